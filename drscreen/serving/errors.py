"""The one error type of the serving stack, carrying a gRPC status code, and its HTTP mapping.

Every failure a client can cause (bad input, unknown model, oversized request) is raised as a
`ServingError` so both front ends report it with the code TensorFlow Serving would use.
"""

import grpc

# TensorFlow Serving's status-to-HTTP mapping (model_servers/http_server.cc).
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
_CODE_FOR_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    411: grpc.StatusCode.INVALID_ARGUMENT,
    412: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


class ServingError(Exception):
    """A request failure with the gRPC status code that describes it.

    Parameters
    ----------
    code:
        gRPC status code, e.g. ``grpc.StatusCode.INVALID_ARGUMENT``.
    message:
        Human-readable reason naming the offending model, version, signature or tensor.
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def http_status(code: grpc.StatusCode) -> int:
    """HTTP status TensorFlow Serving's REST API returns for a gRPC status code."""
    return _HTTP_STATUS.get(code, 500)


def code_for_http_status(status: int) -> grpc.StatusCode:
    """gRPC status code matching an HTTP error status (the inverse of `http_status`)."""
    return _CODE_FOR_HTTP.get(status, grpc.StatusCode.INTERNAL)
