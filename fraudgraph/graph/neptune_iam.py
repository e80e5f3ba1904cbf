"""Amazon Neptune IAM database authentication: SigV4-signed WebSocket handshakes.

Neptune with IAM auth accepts a WebSocket only when its HTTP handshake (``GET /gremlin``) carries a
SigV4 signature for the ``neptune-db`` service. :func:`handshake_headers` signs it with botocore's
SigV4 implementation and credentials from the standard AWS chain (environment, shared files, the
instance or task role); refreshable credentials (session tokens of an assumed role) are refreshed by
botocore before they expire, and every new connection is signed afresh. Switched on by
``graph.gremlin.iam: true``.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

SERVICE = "neptune-db"


class IamConfigError(ValueError):
    """IAM auth is on but no credentials or region can be found; names what to set."""


def handshake_headers(url: str, region: str | None = None, credentials: Any = None) -> dict[str, str]:
    """Headers (``Authorization``, ``X-Amz-Date``, ``Host``, and ``X-Amz-Security-Token`` with a session
    token) that sign the WebSocket handshake to ``url`` (``ws://`` or ``wss://``)."""
    import botocore.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = botocore.session.get_session()
    region = (
        region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or session.get_config_variable("region")
    )
    if not region:
        raise IamConfigError("graph.gremlin.iam: no AWS region (set graph.gremlin.iam_region or AWS_REGION)")
    credentials = credentials or session.get_credentials()
    if credentials is None:
        raise IamConfigError(
            "graph.gremlin.iam: no AWS credentials in the standard chain (environment, ~/.aws, instance or task role)"
        )
    parts = urlparse(url)
    http_url = parts._replace(scheme="https" if parts.scheme == "wss" else "http").geturl()
    request = AWSRequest(method="GET", url=http_url, data=b"")
    request.headers["Host"] = parts.netloc
    SigV4Auth(credentials.get_frozen_credentials(), SERVICE, region).add_auth(request)
    return {k: v for k, v in request.headers.items()}
