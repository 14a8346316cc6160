"""The only place the Model Context Protocol SDK (`mcp` 2.x) is imported: a server on stdio.

Knows the SDK, not our tables: each tool arrives as a plain Python callable whose typed parameters
become the tool's input schema, with its description and behaviour hints. A callable returns a
JSON-ready dict (sent as structured content, and as compact JSON text for clients that read only
text); an exception of one of the caller's user-error types becomes a tool error carrying its
message, anything else a generic failure (the SDK keeps the traceback on the server's stderr).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its handler, what it does, and how it behaves (the MCP annotations' hints).

    `read_only` tools change nothing; a writing tool says whether it may destroy something and
    whether calling it twice with the same arguments does no more than calling it once. No tool
    of ours reaches past the local warehouse, so the world is closed unless `open_world`."""

    name: str
    handler: Callable[..., dict[str, Any]]
    description: str
    title: str | None = None
    read_only: bool = True
    destructive: bool = False
    idempotent: bool = True
    open_world: bool = False


def annotations(spec: ToolSpec) -> ToolAnnotations:
    """The spec's hints as the SDK's ToolAnnotations (all four set, so no client falls back to a default)."""
    return ToolAnnotations(
        title=spec.title,
        read_only_hint=spec.read_only,
        destructive_hint=False if spec.read_only else spec.destructive,
        idempotent_hint=True if spec.read_only else spec.idempotent,
        open_world_hint=spec.open_world,
    )


def _tool_function(spec: ToolSpec, user_errors: tuple[type[Exception], ...]) -> Callable[..., CallToolResult]:
    """The handler as the SDK calls it; `functools.wraps` keeps its signature, so its schema."""

    @functools.wraps(spec.handler)
    def call(**arguments: Any) -> CallToolResult:
        try:
            result = spec.handler(**arguments)
        except user_errors as err:
            raise ToolError(str(err)) from None
        text = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=result)

    return call


def build_server(
    name: str,
    tools: list[ToolSpec],
    *,
    instructions: str | None = None,
    version: str = "",
    user_errors: tuple[type[Exception], ...] = (),
) -> MCPServer:
    """An MCP server offering these tools; `user_errors` are the exception types whose message the model may read."""
    server: MCPServer = MCPServer(name=name, instructions=instructions, version=version, log_level="WARNING")
    for spec in tools:
        server.add_tool(
            _tool_function(spec, user_errors),
            name=spec.name,
            title=spec.title,
            description=spec.description,
            annotations=annotations(spec),
            structured_output=True,
        )
    return server


def run_stdio(server: MCPServer) -> None:
    """Serve on stdin/stdout until the client closes the connection (stdout carries only the protocol)."""
    server.run("stdio")
