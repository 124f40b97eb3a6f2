"""The multipart form of ``POST /items``: its fields read and checked, uploads stored, paths kept inside the
allowed folders. The result is a :class:`~modalrec.serve.items.NewItemContent` for :meth:`Service.add_item`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request

from modalrec.errors import ModalrecError
from modalrec.serve.items import NewItemContent, ServiceError, check_item_id, image_path_inside, save_upload
from modalrec.serve.schemas import MAX_PATH_CHARS, MAX_TEXT_CHARS
from modalrec.serve.service import Service

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
MAX_FORM_FIELD_BYTES = 64 << 10  # one text field of the POST /items form


async def read_new_item(request: Request, service: Service) -> NewItemContent:
    """The new item a ``POST /items`` request describes (415 unless it is a form; 4xx for a bad field)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind not in FORM_TYPES:
        raise ServiceError(415, f"expected a form ({' or '.join(FORM_TYPES)}), got content type "
                                f"'{kind or 'none'}'")
    form = await request.form(max_files=4, max_fields=64, max_part_size=MAX_FORM_FIELD_BYTES)
    try:
        return await _new_item_content(service, form)
    finally:
        await form.close()


def text_fields(service: Service) -> list[str]:
    try:
        return service.embedder.text_columns()
    except ModalrecError:
        return []


def file_fields(service: Service) -> list[str]:
    try:
        return service.embedder.file_modalities()
    except ModalrecError:
        return []


async def _new_item_content(service: Service, form: Any) -> NewItemContent:
    """Read and check the form of POST /items (uploads stored, paths checked against the allowed folders)."""
    service.check_can_add_items()
    files_allowed = service.embedder.file_modalities()
    text_fields = service.embedder.text_columns()
    known = {"item_id", "title", *text_fields, *files_allowed, *(f"{m}_path" for m in files_allowed)}
    unknown = sorted(set(form.keys()) - known)
    if unknown:
        raise ServiceError(422, f"unknown form field '{unknown[0]}'; expected: {', '.join(sorted(known))}")
    item_id = form.get("item_id")
    if not isinstance(item_id, str):
        raise ServiceError(422, "item_id: a text form field is required")
    item_id = check_item_id(item_id, service.catalogue)
    texts = {}
    for name in ("title", *text_fields):
        value = form.get(name)
        if isinstance(value, UploadFile):
            raise ServiceError(422, f"{name}: expected text, got a file upload")
        if value and len(value) > MAX_TEXT_CHARS:
            raise ServiceError(422, f"{name}: at most {MAX_TEXT_CHARS} characters, got {len(value)}")
        if value and name in text_fields:
            texts[name] = str(value)
    title = form.get("title")
    files: dict[str, Path] = {}
    base = service.catalogue.source.items_file.parent if service.catalogue.source.items_file else Path.cwd()
    for modality in files_allowed:
        upload, given_path = form.get(modality), form.get(f"{modality}_path")
        if upload is not None and given_path:
            raise ServiceError(422, f"{modality}: give an upload or {modality}_path, not both")
        if isinstance(upload, UploadFile):
            files[modality] = await _stored_upload(service, modality, upload, item_id)
        elif upload is not None:
            raise ServiceError(422, f"{modality}: expected a file upload (or {modality}_path with a path)")
        elif isinstance(given_path, UploadFile):
            raise ServiceError(422, f"{modality}_path: expected text (a path), got a file upload")
        elif given_path and given_path.strip():
            if len(given_path) > MAX_PATH_CHARS:
                raise ServiceError(422, f"{modality}_path: at most {MAX_PATH_CHARS} characters")
            files[modality] = image_path_inside(given_path, service.picture_roots, base, f"{modality}_path")
    return NewItemContent(item_id, texts, files, title if isinstance(title, str) and title.strip() else None)


async def _stored_upload(service: Service, modality: str, upload: UploadFile, item_id: str) -> Path:
    """Check an uploaded picture (size, declared type and real format) and store it with the new items."""
    if modality != "image":
        raise ServiceError(415, f"{modality}: only pictures can be uploaded; give {modality}_path")
    limit = service.settings.max_upload_bytes
    if upload.size is not None and upload.size > limit:
        raise ServiceError(413, f"image: the upload has {upload.size} bytes; at most {limit} are accepted")
    data = await upload.read(limit + 1)
    return await run_in_threadpool(save_upload, data, upload.content_type or "", item_id,
                                   service.new_items.images, limit)
