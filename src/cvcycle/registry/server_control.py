"""Asking an inference server to load a model and to say when a version is ready.

Speaks the KServe v2 / Triton HTTP protocol with its model repository extension (``POST
/v2/repository/models/{name}/load``, ``POST /v2/repository/index``), so it drives NVIDIA Triton in
EXPLICIT model control and ``cvcycle serve`` alike. A server that polls its repository instead
(Triton's POLL mode refuses the load API; a server without the extension lacks it) picks new
versions up on its own; then :meth:`InferenceServerControl.load` says so and the caller waits for
readiness. A server that restricts model control (``--http-restricted-api
model-repository:HEADER=VALUE``, as ``cvcycle up`` starts it) gets ``key``, (header, value), on
every request; a refusal without it is an error naming the header. Errors carry what the server said.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from cvcycle.errors import ServerUnavailable

#: The extension name servers list in their metadata (``GET /v2``) when they take load requests.
REPOSITORY_EXTENSION = "model_repository"

#: How a server that polls its repository refuses a load request (Triton: "explicit model load /
#: unload is not allowed if polling is enabled").
POLLING_REFUSAL = "polling is enabled"


class InferenceServerControl:
    """One inference server at ``url`` (``http://host:8000`` or ``host:8000``)."""

    def __init__(self, url: str, timeout: float = 30.0, *, key: tuple[str, str] | None = None) -> None:
        self.url = (url if "://" in url else f"http://{url}").rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=dict([key]) if key else None)
        self._key_header = key[0] if key else None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> InferenceServerControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------------------------

    def load(self, model: str, timeout: float) -> bool:
        """Ask the server to load (or reload) ``model`` by its config's version policy.

        True once the server has done it; False when the server polls its repository instead and
        so takes no load requests (the new version arrives with its next poll).
        """
        if REPOSITORY_EXTENSION not in self._extensions():
            return False
        response = self._request("POST", f"/v2/repository/models/{model}/load", json={}, timeout=timeout)
        if response.status_code == 200:
            return True
        message = _error_message(response)
        if POLLING_REFUSAL in message.lower():
            return False
        raise ServerUnavailable(
            f"the server at {self.url} could not load {model}: {message}",
            hint="the server's log has the details; fix the model or its config.pbtxt and sync again",
        )

    def version_ready(self, model: str, version: int) -> bool:
        response = self._request("GET", f"/v2/models/{model}/versions/{version}/ready")
        return response.status_code == 200

    def wait_until_ready(self, model: str, version: int, timeout: float, interval: float = 0.1) -> None:
        """Return once the version is ready; ServerUnavailable with the server's reason if it is not."""
        deadline = time.monotonic() + timeout
        while not self.version_ready(model, version):
            if time.monotonic() >= deadline:
                raise ServerUnavailable(
                    f"the server at {self.url} did not make {model} version {version} ready within "
                    f"{timeout:g} s: {self.why_not_ready(model, version)}",
                    hint="a server in explicit model control loads only on request; one that polls "
                    "needs its poll interval to pass; raise --load-timeout for a large model",
                )
            time.sleep(interval)

    def why_not_ready(self, model: str, version: int) -> str:
        """The server's own reason, from its repository index or its readiness answer."""
        if REPOSITORY_EXTENSION in self._extensions():
            response = self._request("POST", "/v2/repository/index", json={})
            if response.status_code == 200:
                for entry in response.json():
                    if entry.get("name") == model and str(entry.get("version", "")) in ("", str(version)):
                        reason = entry.get("reason") or "no reason given"
                        return f"state {entry.get('state', 'unknown')}: {reason}"
        response = self._request("GET", f"/v2/models/{model}/versions/{version}/ready")
        return _error_message(response) or f"HTTP {response.status_code} and no reason given"

    # -- internals ----------------------------------------------------------------------------------

    def _extensions(self) -> list[str]:
        response = self._request("GET", "/v2")
        if response.status_code != 200:
            raise ServerUnavailable(
                f"the server at {self.url} answered its metadata request with HTTP {response.status_code}: "
                f"{_error_message(response)}",
                hint="is --server the HTTP address of a KServe v2 server (cvcycle serve or Triton)?",
            )
        return [str(e) for e in response.json().get("extensions", [])]

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnavailable(
                f"cannot reach the inference server at {self.url}: {exc}",
                hint="start it (cvcycle serve --repo DIR, or tritonserver) or correct --server",
            ) from exc
        if response.status_code == 403:
            sent = (
                f"the key sent in header {self._key_header!r} is wrong" if self._key_header else "no key sent"
            )
            raise ServerUnavailable(
                f"the server at {self.url} refused {method} {path} ({sent}): {_error_message(response)}",
                hint="pass the server's model-control key with --server-key (and --server-key-header); "
                "cvcycle up writes its key to <home>/inference-server.key",
            )
        return response


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return response.text.strip()
