"""The anchor of ``bench/load.py``: a bare FastAPI app on the server's own uvicorn settings.

    python bench/anchor.py --port 8765

``GET /ping`` answers a constant; ``POST /echo`` takes ``{"vector": [384 floats]}`` and returns
``{"vector": [1280 floats]}`` (the demo's audio → image shape), written the way a FastAPI tutorial would:
a pydantic model in, a dict out, no middleware. Its requests/s is what the same machine, Python, uvicorn
and HTTP client reach without any of the service's work, so the service's numbers read as a ratio to it.
Loopback only.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from latent_bridge.service.api.protocol import PROTOCOL
from latent_bridge.service.api.protocol import configure as configure_protocol
from latent_bridge.service.settings import Settings
from pydantic import BaseModel

HOST = "127.0.0.1"
ECHO_IN = 384
ECHO_OUT = 1280


class Echo(BaseModel):
    vector: list[float]


app = FastAPI()


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/echo")
async def echo(body: Echo) -> dict[str, list[float]]:
    """The input repeated to ECHO_OUT values (a stand-in for a translation of the same shape)."""
    values = body.vector or [0.0]
    return {"vector": (values * (ECHO_OUT // len(values) + 1))[:ECHO_OUT]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings(host=HOST, port=args.port, log_level="warning")
    configure_protocol(settings)
    # the keyword arguments of latent_bridge/service/api/server.py's uvicorn.run, one worker
    uvicorn.run(
        app,
        host=HOST,
        port=args.port,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=settings.drain_seconds,
        timeout_keep_alive=int(settings.keep_alive_timeout),
        http=PROTOCOL,
    )


if __name__ == "__main__":
    main()
