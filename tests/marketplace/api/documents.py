"""Documents the tests publish: an OpenAPI document, an agent card, REST-to-MCP
definitions. Upstreams are on loopback: the tests' machine resolves no other name."""

from __future__ import annotations

import json
from typing import Any

UPSTREAM = "http://127.0.0.1:9"

OPENAPI_YAML = f"""\
openapi: 3.1.0
info:
  title: Weather API
  version: 1.0.0
servers:
  - url: {UPSTREAM}/v1
paths:
  /forecast:
    get:
      operationId: getForecast
      summary: Get the forecast
      tags: [forecast]
      parameters:
        - name: city
          in: query
          required: true
          schema: {{type: string}}
      responses:
        "200":
          description: The forecast.
  /alerts/{{region}}:
    parameters:
      - name: region
        in: path
        required: true
        schema: {{type: string}}
    get:
      operationId: listAlerts
      summary: List storm alerts
      responses:
        "200":
          description: The alerts.
    post:
      operationId: createAlert
      summary: Raise an alert
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                level: {{type: string}}
      responses:
        "201":
          description: Raised.
"""

# A path parameter must say "required: true".
INVALID_OPENAPI_YAML = """\
openapi: 3.1.0
info:
  title: Broken API
  version: 1.0.0
paths:
  /things/{id}:
    get:
      parameters:
        - name: id
          in: path
          schema: {type: string}
      responses:
        "200":
          description: A thing.
"""


def agent_card(**overrides: Any) -> dict[str, Any]:
    card: dict[str, Any] = {
        "protocolVersion": "0.3.0",
        "name": "Trip planner",
        "description": "Plans trips around the weather.",
        "url": f"{UPSTREAM}/a2a",
        "version": "1.0.0",
        "capabilities": {"streaming": True},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [
            {
                "id": "plan-trip",
                "name": "Plan a trip",
                "description": "Plans a few days somewhere, around the forecast.",
                "tags": ["travel", "weather"],
                "examples": ["Plan three days in Lyon"],
            }
        ],
    }
    card.update(overrides)
    return card


def agent_card_text(**overrides: Any) -> str:
    return json.dumps(agent_card(**overrides), indent=2)
