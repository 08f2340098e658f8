"""Native REST (v1): model listing (predict itself is on the ASGI fast path, ``api/fast_path.py``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from service.api.deps import ServicesDep
from service.api.http import JSONBytes

router = APIRouter(prefix="/v1", tags=["predict"])
# POST /v1/models/{m}[/versions/{ref}]/predict is served by the ASGI fast path (api/fast_path.py).


@router.get("/models")
async def list_models(services: ServicesDep) -> Response:
    """Models in the repository: loaded versions, their active calibrator, load errors, aliases."""
    out = []
    for name, entry in sorted(services.registry.models.items()):
        out.append({
            "name": name,
            "versions": [
                {"version": v.version, "classes": v.card.classes, "loss": v.card.loss.model_dump(),
                 "calibrator_version": v.serving.calibrator_version if v.serving else None,
                 "calibration_method": v.serving.method if v.serving else None}
                for v in sorted(entry.versions.values(), key=lambda x: x.version)
            ],
            "errors": {str(k): e for k, e in entry.errors.items()},
            "aliases": {a: v for (m, a), v in services.registry.aliases.items() if m == name},
        })
    return JSONBytes({"models": out})
