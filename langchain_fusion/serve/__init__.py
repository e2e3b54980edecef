"""`fusion serve`: the configured fusions as virtual models behind an OpenAI-compatible API.

```python
from langchain_fusion.serve import create_app

app = create_app("fusions.yaml", api_keys=["sk-..."])  # an ASGI app: serve it, or mount it
```

`load_fusions(path)` reads the same config file into `{name: FusionChatModel}` for any other
command. `run_server(app, host, port)` serves an app with uvicorn, with a graceful shutdown.
"""

from langchain_fusion.serve._app import FusionServer, create_app
from langchain_fusion.serve._config import (
    ConfigError,
    Endpoint,
    FusionEntry,
    ServeConfig,
    ServerSettings,
    build_fusions,
    load_config,
    load_fusions,
    parse_config,
)
from langchain_fusion.serve._security import ApiKeys, check_bind, is_loopback, load_api_keys
from langchain_fusion.serve._server import run_server

__all__ = [
    "ApiKeys",
    "ConfigError",
    "Endpoint",
    "FusionEntry",
    "FusionServer",
    "ServeConfig",
    "ServerSettings",
    "build_fusions",
    "check_bind",
    "create_app",
    "is_loopback",
    "load_api_keys",
    "load_config",
    "load_fusions",
    "parse_config",
    "run_server",
]
