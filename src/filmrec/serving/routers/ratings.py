from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from filmrec.serving import responses
from filmrec.serving.deps import RatingIntakeDep, WriteKeyDep
from filmrec.serving.rating_intake import RatingsUnavailableError
from filmrec.serving.schemas import RatingAcceptedOut, RatingIn

router = APIRouter(prefix="/ratings", tags=["ratings"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RatingAcceptedOut,
    responses={
        **responses.AUTH,
        **responses.UNREADABLE_BODY,
        **responses.TOO_LARGE,
        **responses.INVALID,
        **responses.RATE_LIMITED,
        **responses.KAFKA_UNAVAILABLE,
        **responses.RATING_ACCEPTED_LINKS,
    },
)
def post_rating(caller: WriteKeyDep, rating: RatingIn, intake: RatingIntakeDep) -> RatingAcceptedOut:
    """Validate one rating and publish it to Kafka: the user's next recommendations fold
    it in, and it reaches Delta on the next ingestion. Needs an API key (X-API-Key); the
    key's name (never the key) is recorded with the rating, in Kafka and in Delta.
    A key belongs to a trusted back end that rates for its users (CONNECTIONS.md)."""
    try:
        event = intake.accept(rating, written_by=caller)
    except RatingsUnavailableError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error)) from error
    return RatingAcceptedOut(event_id=event.event_id, topic=intake.topic)
