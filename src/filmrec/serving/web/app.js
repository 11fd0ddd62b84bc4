// The filmrec page: plain JavaScript against the API of the same origin, no build step.
"use strict";

// New visitors get a random id far above any MovieLens user id (ml-32m stops near
// 201,000) and below the API's bound (2^31): no collision with a real user's history.
const VISITOR_MIN = 1_000_000_000;
const VISITOR_SPAN = 1_000_000_000;
const PAGE = 10;
const store = {
  get: (key, fallback) => localStorage.getItem(`filmrec.${key}`) ?? fallback,
  set: (key, value) => localStorage.setItem(`filmrec.${key}`, String(value)),
};
const $ = (id) => document.getElementById(id);
let userId = null;
let search = { q: "", genre: "", offset: 0 };

// -- talking to the API -------------------------------------------------------------
class ApiError extends Error {}

function explain(response, detail) {
  if (response.status === 401 || response.status === 403) {
    return `The API refused the API key (${response.status}): check the "API key" field (the demo key is "demo").`;
  }
  if (response.status === 429) {
    const wait = response.headers.get("Retry-After");
    return `Too many requests: please wait ${wait ? `${wait} seconds` : "a moment"} and try again.`;
  }
  if (response.status === 503) return `The service is not available right now: ${detail}`;
  return `The API answered ${response.status}: ${detail}`;
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new ApiError(`The API cannot be reached (${error.message}).`);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
    const error = new ApiError(explain(response, detail));
    error.status = response.status;
    throw error;
  }
  return body;
}

function showError(error) {
  const box = $("message");
  box.textContent = error instanceof ApiError ? error.message : `Something went wrong: ${error}`;
  box.hidden = false;
}
function clearError() { $("message").hidden = true; }
function say(text) { $("status").textContent = text; }

// -- rendering ----------------------------------------------------------------------
function ratedMovies() { return JSON.parse(store.get(`rated.${userId}`, "{}")); }

function movieItem(movie, { because } = {}) {
  const item = $("movie-template").content.firstElementChild.cloneNode(true);
  const title = movie.title ?? `Movie ${movie.movie_id}`;
  item.dataset.movieId = movie.movie_id;
  item.querySelector(".title").textContent = title;
  item.querySelector(".year").textContent = movie.year ? `(${movie.year})` : "";
  item.querySelector(".genres").textContent = (movie.genres ?? []).join(", ");
  if (because) {
    item.querySelector(".because").textContent =
      `Because you rated ${because.title ?? `movie ${because.movie_id}`}`;
  }
  const mine = ratedMovies()[movie.movie_id];
  if (mine !== undefined) item.querySelector(".your-rating").textContent = `You rated it ${mine}`;
  const select = item.querySelector(".rate-value");
  select.setAttribute("aria-label", `Rating for ${title}`);
  const rate = item.querySelector(".rate");
  rate.setAttribute("aria-label", `Rate ${title}`);
  rate.addEventListener("click", () => rateMovie(movie, title, Number(select.value), rate));
  const similar = item.querySelector(".similar");
  similar.setAttribute("aria-label", `Similar to ${title}`);
  similar.addEventListener("click", () => showSimilar(movie.movie_id, title));
  return item;
}

function fill(list, movies, options) {
  list.replaceChildren(...movies.map((movie) => movieItem(movie, options?.(movie))));
}

// -- who you are --------------------------------------------------------------------
function setUser(id, isVisitor) {
  userId = id;
  store.set("user", id);
  store.set("visitor", isVisitor ? "1" : "0");
  $("user-id").value = id;
  $("identity").textContent = isVisitor
    ? `You are a new visitor (id ${id}): rate a few movies and your recommendations follow.`
    : `You are MovieLens user ${id}.`;
  loadRecommendations();
}

// -- actions ------------------------------------------------------------------------
async function runSearch(more = false) {
  clearError();
  search.offset = more ? search.offset + PAGE : 0;
  const params = new URLSearchParams({ q: search.q, limit: PAGE, offset: search.offset });
  if (search.genre) params.set("genre", search.genre);
  try {
    const page = await api(`/movies?${params}`);
    const list = $("search-results");
    const items = page.items.map((movie) => movieItem(movie));
    if (more) list.append(...items); else list.replaceChildren(...items);
    const shown = search.offset + page.items.length;
    $("search-summary").textContent = page.total
      ? `${page.total} movie${page.total === 1 ? "" : "s"} found, showing ${shown}.`
      : `No movie matches "${search.q}".`;
    $("search-more").hidden = shown >= page.total;
  } catch (error) { showError(error); }
}

async function rateMovie(movie, title, rating, button) {
  clearError();
  if (userId === null) { showError(new ApiError("Choose who you are first (a user id or new visitor).")); return; }
  button.disabled = true;
  try {
    await api("/ratings", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-API-Key": $("api-key").value },
      body: JSON.stringify({ user_id: userId, movie_id: movie.movie_id, rating }),
    });
    const rated = ratedMovies();
    rated[movie.movie_id] = rating;
    store.set(`rated.${userId}`, JSON.stringify(rated));
    say(`Rated ${title} ${rating} stars.`);
    for (const node of document.querySelectorAll(`.movie[data-movie-id="${movie.movie_id}"] .your-rating`)) {
      node.textContent = `You rated it ${rating}`;
    }
    await loadRecommendations();
  } catch (error) { showError(error); } finally { button.disabled = false; }
}

const STRATEGIES = {
  model: "from the trained model",
  "fold-in": "fold-in: your latest ratings folded into the model",
  popular: "popular movies (no ratings yet)",
};

async function loadRecommendations() {
  if (userId === null) return;
  try {
    const body = await api(`/recommendations/${userId}?k=10&explain=true`);
    const rated = ratedMovies();
    fill($("recs"), body.items, (movie) => ({ because: movie.because }));
    const summary = $("recs-summary");
    summary.replaceChildren();
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.dataset.strategy = body.strategy;
    badge.textContent = body.strategy;
    summary.append(badge, ` ${STRATEGIES[body.strategy] ?? ""} · model v${body.model_version}`,
      Object.keys(rated).length ? ` · you rated ${Object.keys(rated).length} here` : "");
  } catch (error) {
    $("recs").replaceChildren();
    $("recs-summary").textContent = "No recommendations right now.";
    showError(error);
  }
}

async function showSimilar(movieId, title) {
  clearError();
  const panel = $("similar-panel");
  try {
    const body = await api(`/movies/${movieId}/similar?k=10`);
    $("similar-heading").textContent = `Similar to ${title}`;
    fill($("similar"), body.items);
    panel.hidden = false;
    $("similar-heading").focus();
  } catch (error) { showError(error); }
}

function row(card, term, value) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  card.append(dt, dd);
}

async function loadModelCard() {
  const card = $("model-card");
  try {
    const model = await api("/model");
    const metrics = model.metrics ?? {};
    const ndcg = metrics.ndcg_at_10;
    const baseline = metrics.baseline_popularity_ndcg_at_10;
    card.replaceChildren();
    row(card, "Model", `${model.name} v${model.version}`);
    row(card, "Family", model.family ? model.family.toUpperCase() : "not recorded");
    row(card, "Trained at", model.created_at ? new Date(model.created_at).toLocaleString() : "unknown");
    row(card, "nDCG@10", ndcg === undefined ? "not recorded"
      : baseline ? `${ndcg.toFixed(3)} vs ${baseline.toFixed(3)} for popularity (${(ndcg / baseline).toFixed(2)}×)`
        : ndcg.toFixed(3));
    row(card, "Data version", metrics.data_version === undefined ? "unknown" : `Delta version ${metrics.data_version}`);
    row(card, "Users · movies", `${model.n_users} · ${model.n_items}`);
  } catch (error) {
    card.replaceChildren();
    row(card, "Status", error.message);
  }
}

async function loadGenres() {
  try {
    const { genres } = await api("/movies/genres");
    for (const genre of genres) {
      const option = document.createElement("option");
      option.value = option.textContent = genre;
      $("search-genre").append(option);
    }
  } catch { /* the filter stays at "Any genre"; search reports the outage itself */ }
}

// -- wiring -------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = store.get("apiKey", "demo");
  $("api-key").addEventListener("change", (event) => store.set("apiKey", event.target.value));
  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearError();
    setUser(Number($("user-id").value), false);
  });
  $("new-visitor").addEventListener("click", () => {
    const bytes = crypto.getRandomValues(new Uint32Array(1));
    clearError();
    setUser(VISITOR_MIN + (bytes[0] % VISITOR_SPAN), true);
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    search = { q: $("search-q").value, genre: $("search-genre").value, offset: 0 };
    runSearch();
  });
  $("search-more").addEventListener("click", () => runSearch(true));
  $("recs-refresh").addEventListener("click", () => { clearError(); loadRecommendations(); });
  const saved = store.get("user", null);
  if (saved !== null) setUser(Number(saved), store.get("visitor", "0") === "1");
  loadGenres();
  loadModelCard();
});
