from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from filmrec.serving.deps import RatingIntakeDep
from filmrec.serving.rating_intake import RatingsUnavailableError
from filmrec.serving.schemas import ErrorOut, RatingAcceptedOut, RatingIn

router = APIRouter(prefix="/ratings", tags=["ratings"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RatingAcceptedOut,
    responses={422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
def post_rating(rating: RatingIn, intake: RatingIntakeDep) -> RatingAcceptedOut:
    """Validate one rating and publish it to Kafka: the user's next recommendations fold
    it in, and it reaches Delta on the next ingestion."""
    try:
        event = intake.accept(rating)
    except RatingsUnavailableError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error)) from error
    return RatingAcceptedOut(event_id=event.event_id, topic=intake.topic)
