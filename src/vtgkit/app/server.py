"""The FastAPI application behind ``vtgkit serve``: one HTML page and a small JSON API.

Routes:

* ``GET /`` — the page (plain HTML, CSS and a little JavaScript; no framework, nothing fetched from elsewhere).
* ``GET /api/info`` — checkpoint name, upload limit, the sample video and its example queries.
* ``POST /api/videos?name=FILE`` — upload: the request body is the video's bytes (``Content-Type:
  application/octet-stream``), streamed to disk; 413 past the limit, 400 with the decoder's message when the file
  is not a video. Answers ``{"id", "name"}``.
* ``POST /api/ground`` — ``{"video": ID, "query": TEXT, "top_k": N}`` → moments (best first), the timeline as an
  SVG data URI, warnings, whether the video's features were reused.
* ``GET /videos/{id}`` — the video itself, with HTTP range requests (206) so that the player can seek.

Every refusal is JSON ``{"error": message}`` with a 4xx status; an unexpected failure is a 500 with a short message
(the traceback goes to the server log, not to the page).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from vtgkit.api import check_video
from vtgkit.app.body_limit import BodyLimit
from vtgkit.app.grounding import MAX_TOP_K, GroundingService
from vtgkit.app.uploads import EmptyUploadError, UploadTooLargeError, VideoLibrary
from vtgkit.errors import VTGKitError

PAGE = Path(__file__).with_name("page.html")
MAX_QUERY_CHARS = 2000  # far beyond CLIP's 77 tokens (longer queries are truncated with a warning anyway)
MAX_JSON_BYTES = 64_000  # request bodies other than uploads
log = logging.getLogger("vtgkit.serve")


class GroundRequest(BaseModel):
    video: str = Field(min_length=1, max_length=64)
    query: str = Field(max_length=MAX_QUERY_CHARS)
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(grounder: Any, library: VideoLibrary, *, sample_queries: list[str] | None = None) -> FastAPI:
    """The application for one Grounder and one :class:`VideoLibrary` (which may hold the sample video)."""
    service = GroundingService(grounder)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        library.close()  # uploads are temporary: the files this server wrote go when it stops

    app = FastAPI(title="vtgkit", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.service, app.state.library = service, library
    app.add_middleware(BodyLimit, max_bytes=MAX_JSON_BYTES, exempt_paths=frozenset({"/api/videos"}))
    page = PAGE.read_text(encoding="utf-8")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(part) for part in item['loc'][1:]) or 'body'}: {item['msg']}"
                             for item in error.errors())
        return _error(422, f"bad request: {problems}")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> JSONResponse:  # 404, 405, 413: same JSON shape
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return _error(500, f"internal error ({type(error).__name__}); see the server log")

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/api/info")
    async def info() -> dict[str, Any]:
        sample = library.get("sample")
        return {
            "checkpoint": service.checkpoint,
            "max_upload_bytes": library.max_upload_bytes,
            "sample": None if sample is None else {"id": sample.id, "name": sample.name,
                                                   "queries": list(sample_queries or [])},
        }

    @app.post("/api/videos", status_code=201, response_model=None)
    async def upload(request: Request, name: str | None = None) -> dict[str, str] | JSONResponse:
        try:
            library.check_declared_size(request.headers.get("content-length"))
            video = await library.save(request.stream(), name)
        except UploadTooLargeError as error:
            return _error(413, str(error))
        except EmptyUploadError as error:
            return _error(400, str(error))
        except OSError as error:  # full disk, read-only folder: the partial file is already gone
            log.warning("upload failed: %s", error)
            return _error(507, f"the server could not store the upload ({error.strerror or error})")
        try:
            await run_in_threadpool(check_video, video.path)
        except VTGKitError as error:
            library.remove(video.id)
            # The message names the server's file; show the user's name instead.
            return _error(400, str(error).replace(str(video.path), video.name))
        except Exception:
            library.remove(video.id)  # an unchecked file is never offered
            raise
        return {"id": video.id, "name": video.name}

    @app.post("/api/ground", response_model=None)
    def ground(request: GroundRequest) -> dict[str, Any] | JSONResponse:
        # A plain `def`: FastAPI runs it in a worker thread, so the event loop keeps serving while the model runs.
        video = library.get(request.video)
        if video is None:
            return _error(404, f"unknown video {request.video!r}: upload it again or pick the sample")
        try:
            answer = service.ground(video.path, request.query, request.top_k,
                                   video.ground_truth.get(request.query.strip(), []))
        except VTGKitError as error:
            return _error(400, str(error).replace(str(video.path), video.name))
        return {"video": video.id, "name": video.name, "query": request.query, **answer.to_json()}

    @app.get("/videos/{video_id}", response_model=None)
    async def media(video_id: str) -> FileResponse | JSONResponse:
        video = library.get(video_id)  # ids come from the registry only: no path is built from the URL
        if video is None or not os.path.isfile(video.path):
            return _error(404, f"unknown video {video_id!r}")
        return FileResponse(video.path, media_type=video.media_type)  # answers Range requests with 206

    return app
