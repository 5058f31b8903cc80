"""The request schema, once: it validates bodies and it is the OpenAPI document's components.

:func:`schemas` returns the JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of every
request and answer; :func:`validate` checks a decoded body against them and raises
:class:`~judgeforge.serve.config.HTTPProblem` (422) with one line naming the field;
:func:`parse_json` decodes a body with the limits the schema cannot express (nesting
depth, digits of an integer, NaN/Infinity: 400); :func:`openapi_document` wraps the same
schemas in paths.  The validator implements the subset of JSON Schema used here: type,
enum, minLength, minItems, maxItems, properties, required, additionalProperties (false),
items, oneOf (picked by JSON type), $ref; ``title`` names a schema in messages.  Every
string anywhere in a body must be encodable Unicode (no lone surrogates): 422.
"""

from __future__ import annotations

import json
import math

from judgeforge.errors import did_you_mean
from judgeforge.serve.config import MAX_JSON_DEPTH, MAX_NUMBER_DIGITS, HTTPProblem, ServerConfig

ITEM_FIELDS = {"absolute": ("instruction", "response"), "relative": ("instruction", "response_a", "response_b"),
               "reward": ("prompt", "response")}
REQUEST_SCHEMA = {"absolute": "AbsoluteRequest", "relative": "RelativeRequest", "reward": "RewardRequest"}


def schemas(config: ServerConfig | None = None) -> dict:
    """Every component schema of the API (the limits are ``config``'s)."""
    from judgeforge.format.prompts import PRESET_RUBRICS

    c = config or ServerConfig()
    ref = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731
    text = {"type": "string"}
    nullable_str = {"type": ["string", "null"]}
    item_id = {"type": ["string", "integer", "null"], "description": "echoed back in the result"}
    messages = {"type": "array", "title": "a list of chat messages {role, content}",
                "items": {"type": "object", "title": "a chat message {\"role\": ..., \"content\": ...}",
                          "required": ["role", "content"], "properties": {"role": text, "content": {}}}}

    def item(required: dict) -> dict:
        props = {**required,
                 "reference_answer": {**nullable_str, "description": "a reference answer (score 5)"},
                 "rubric": {**ref("Rubric"), "description": "overrides the request's rubric for this item"},
                 "id": item_id}
        return {"type": "object", "required": list(required), "properties": props, "additionalProperties": False}

    def request(item_name: str, extra: dict | None = None) -> dict:
        props = {"items": {"type": "array", "minItems": 1, "maxItems": c.max_items, "items": ref(item_name)},
                 "rubric": ref("Rubric"), **(extra or {})}
        return {"type": "object", "title": "a JSON object with an 'items' list", "required": ["items"],
                "properties": props, "additionalProperties": False}

    result_common = {"id": item_id,
                     "feedback": {**nullable_str, "description": "null when the grade failed"},
                     "error": {**nullable_str, "description": "why the output never parsed (null on success)"},
                     "attempts": {"type": "integer", "minimum": 1, "description": "generations spent"}}
    score = {"type": ["integer", "null"], "minimum": 1, "maximum": 5}

    def result(extra: dict) -> dict:
        props = {**result_common, **extra}
        return {"type": "object", "required": list(props), "properties": props}

    def response(result_name: str, extra: dict | None = None) -> dict:
        props = {"model": text, "results": {"type": "array", "items": ref(result_name)}, **(extra or {})}
        return {"type": "object", "required": list(props), "properties": props}

    return {
        "Rubric": {
            "title": "a preset name or a rubric object {criteria, score1_description ...}",
            "description": ("A preset name (" + ", ".join(PRESET_RUBRICS) + "), an object with criteria and five "
                            "score descriptions, or a rendered rubric string ('[criteria]\\nScore 1: ...'). "
                            "Never a file path: the server reads no files named by clients. Relative grading "
                            "uses the criteria only. Default: the server's --rubric."),
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "object", "required": ["criteria"], "additionalProperties": False,
                 "properties": {"criteria": text, **{f"score{i}_description": text for i in range(1, 6)}}},
            ],
        },
        "AbsoluteItem": item({"instruction": text, "response": text}),
        "RelativeItem": item({"instruction": text, "response_a": text, "response_b": text}),
        "RewardItem": item({"prompt": {"oneOf": [text, messages]}, "response": {"oneOf": [text, messages]}}),
        "AbsoluteRequest": request("AbsoluteItem"),
        "RelativeRequest": request("RelativeItem"),
        "RewardRequest": request("RewardItem", {
            "normalize": {"type": "string", "enum": ["none", "zscore"], "default": "none",
                          "description": "none: (score-1)/4; zscore: (score-mean)/std over this request"},
            "scale": {"type": "number", "default": 1.0, "description": "reward = scale * base + shift"},
            "shift": {"type": "number", "default": 0.0},
            "failure_reward": {"type": ["number", "null"], "default": 0.0,
                               "description": "the reward of an item whose grade failed"},
        }),
        "AbsoluteResult": result({"score": score}),
        "RelativeResult": result({"winner": {"type": ["string", "null"], "enum": ["A", "B", None]}}),
        "RewardResult": result({"score": score, "reward": {"type": ["number", "null"]}}),
        "AbsoluteResponse": response("AbsoluteResult"),
        "RelativeResponse": response("RelativeResult"),
        "RewardResponse": response("RewardResult", {"rewards": {"type": "array",
                                                                "items": {"type": ["number", "null"]}}}),
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["status", "message"],
            "properties": {"status": {"type": "integer"}, "message": text}}}},
        "Health": {"type": "object", "required": ["status", "model", "limits", "batching"], "properties": {
            "status": {"type": "string", "enum": ["ok"]}, "model": text,
            "default_rubric": {"type": "string", "description": "the criteria line of the server's --rubric"},
            "uptime_s": {"type": "number"}, "limits": {"type": "object"}, "batching": {"type": "object"},
            "responses": {"type": "object"}}},
    }


# --------------------------------------------------------------------------- parsing


class _Refused(ValueError):
    pass


def _int(s: str) -> int:
    if len(s.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _Refused(f"the body has a {len(s)}-digit number; numbers may have at most {MAX_NUMBER_DIGITS} digits")
    return int(s)


def _constant(s: str):
    raise _Refused(f"the body has {s}, which is not JSON; send finite numbers")


def parse_json(data: bytes, max_depth: int = MAX_JSON_DEPTH):
    """The decoded body, or HTTPProblem(400): not UTF-8, not JSON, too deep, a huge integer, NaN."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPProblem(400, "the body is not UTF-8 text") from None
    try:
        value = json.loads(text, parse_int=_int, parse_constant=_constant)
    except _Refused as e:
        raise HTTPProblem(400, str(e)) from None
    except json.JSONDecodeError as e:
        raise HTTPProblem(400, f"the body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise HTTPProblem(400, f"the body is nested too deeply; at most {max_depth} levels of arrays and objects") \
            from None
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > max_depth:
                raise HTTPProblem(400, f"the body is nested too deeply; at most {max_depth} levels of arrays "
                                       "and objects")
            stack.extend((x, depth + 1) for x in (v.values() if isinstance(v, dict) else v))
    return value


# --------------------------------------------------------------------------- validation

_TYPE_NAMES = {"object": "an object", "array": "a list", "string": "a string", "boolean": "a boolean",
               "null": "null", "integer": "an integer", "number": "a number"}


def _json_type(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _matches(v, types) -> bool:
    t = _json_type(v)
    types = [types] if isinstance(types, str) else types
    return t in types or (t == "integer" and "number" in types)


def _check_text(v: str, where: str) -> None:
    try:
        v.encode("utf-8")
    except UnicodeEncodeError as e:
        raise HTTPProblem(422, f"{where}: the text is not valid Unicode (a lone surrogate "
                               f"\\u{ord(v[e.start]):04x} at character {e.start}); send UTF-8 text") from None


def _label(where: str) -> str:
    return where or "the body"


def _validate(v, schema: dict, where: str, components: dict) -> None:
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    if "oneOf" in schema:
        for branch in schema["oneOf"]:
            if "type" not in branch or _matches(v, branch["type"]):
                return _validate(v, branch, where, components)
        name = schema.get("title") or " or ".join(
            b.get("title") or _TYPE_NAMES[b["type"]] for b in schema["oneOf"])
        raise HTTPProblem(422, f"{_label(where)} must be {name}, not {_TYPE_NAMES[_json_type(v)]}")
    types = schema.get("type")
    if types is not None and not _matches(v, types):
        names = [_TYPE_NAMES[t] for t in ([types] if isinstance(types, str) else types)]
        name = schema.get("title") or (", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0])
        raise HTTPProblem(422, f"{_label(where)} must be {name}, not {_TYPE_NAMES[_json_type(v)]}")
    if isinstance(v, str):
        _check_text(v, _label(where))
        if len(v) < schema.get("minLength", 0):
            raise HTTPProblem(422, f"{_label(where)} is empty")
    elif isinstance(v, float) and not math.isfinite(v):
        raise HTTPProblem(422, f"{_label(where)} must be a finite number, got {v}")
    if "enum" in schema and v not in schema["enum"]:
        raise HTTPProblem(422, f"{_label(where)} must be one of {', '.join(str(x) for x in schema['enum'])}, "
                               f"got {json.dumps(v, ensure_ascii=True)[:60]}")
    if isinstance(v, list):
        if len(v) < schema.get("minItems", 0):
            raise HTTPProblem(422, f"{_label(where)} is empty; send at least one")
        if "maxItems" in schema and len(v) > schema["maxItems"]:
            if where == "items":
                raise HTTPProblem(422, f"too many items: {len(v)} in one request, the limit is {schema['maxItems']} "
                                       "(--max-items); split the request")
            raise HTTPProblem(422, f"{_label(where)} has {len(v)} entries, at most {schema['maxItems']}")
        for k, x in enumerate(v):
            _validate(x, schema.get("items", {}), f"{where}[{k}]", components)
    elif isinstance(v, dict):
        props = schema.get("properties", {})
        prefix = f"{where}: " if where else ""
        for key in v:
            _check_text(key, f"{_label(where)} (a field name)")
            if schema.get("additionalProperties") is False and key not in props:
                raise HTTPProblem(422, f"{prefix}unknown field '{key[:40]}'{did_you_mean(key, props)}; "
                                       f"{'this endpoint takes' if not where else 'allowed'}: {', '.join(props)}")
        for key in schema.get("required", ()):
            if key not in v:
                need = ", ".join(schema["required"])
                hint = f" (required: {need})" if len(schema["required"]) > 1 else \
                    (": send {\"items\": [{...}, ...]}" if key == "items" else "")
                raise HTTPProblem(422, f"{prefix}missing field '{key}'{hint}")
        for key, x in v.items():
            _validate(x, props.get(key, {}), f"{where}.{key}" if where else key, components)


def validate(kind: str, body, config: ServerConfig | None = None, components: dict | None = None) -> dict:
    """Check a decoded body for an endpoint (absolute, relative, reward); HTTPProblem(422) names the field."""
    components = components or schemas(config)
    _validate(body, components[REQUEST_SCHEMA[kind]], "", components)
    return body


# --------------------------------------------------------------------------- OpenAPI


def openapi_document(config: ServerConfig | None = None) -> dict:
    """The OpenAPI 3.1 description of the server (its schemas are JSON Schema 2020-12)."""
    from judgeforge import __version__

    c = config or ServerConfig()
    ref = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731

    def error(desc: str) -> dict:
        return {"description": desc, "content": {"application/json": {"schema": ref("Error")}}}

    post_errors = {
        "400": error("the body is not UTF-8 JSON, is nested deeper than "
                     f"{MAX_JSON_DEPTH} levels, or has an integer of more than {MAX_NUMBER_DIGITS} digits or NaN"),
        "408": error(f"the headers (within {c.header_timeout:g} s) or the body (within {c.body_timeout:g} s) "
                     "did not arrive in time"),
        "411": error("no Content-Length (chunked bodies are not accepted)"),
        "413": error(f"the body is larger than {c.max_body_bytes} bytes"),
        "422": error(f"a missing or mistyped field, text that is not valid Unicode, an unknown rubric or a rubric "
                     f"path, a prompt longer than the judge's context, or more than {c.max_items} items"),
        "500": error("the judge failed on an item of this request (other requests are unaffected)"),
        "503": error(f"the queue is full, {c.max_connections} connections are open, or the server is shutting "
                     "down"),
        "504": error(f"no answer within {c.request_timeout:g} s of the request"),
    }

    def post(summary: str, req: str, resp: str, op: str) -> dict:
        return {"post": {
            "operationId": op, "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref(req)}}},
            "responses": {"200": {"description": "one result per item, in order",
                                  "content": {"application/json": {"schema": ref(resp)}}}, **post_errors},
        }}

    def get(op: str, summary: str, desc: str, schema: dict) -> dict:
        return {"get": {"operationId": op, "summary": summary, "responses": {"200": {
            "description": desc, "content": {"application/json": {"schema": schema}}}}}}

    return {
        "openapi": "3.1.0",
        "info": {"title": "judgeforge judge server", "version": __version__,
                 "description": "Prometheus-style LLM judge: absolute (1-5) and relative (A/B) grading with "
                                "feedback, and rewards for RLHF. Requests from concurrent clients are batched."},
        "paths": {
            "/health": get("health", "liveness, model and batching counters", "the server is up", ref("Health")),
            "/openapi.json": get("openapi", "this document", "the OpenAPI document", {"type": "object"}),
            "/grade/absolute": post("grade responses on a 1-5 rubric, with feedback", "AbsoluteRequest",
                                    "AbsoluteResponse", "gradeAbsolute"),
            "/grade/relative": post("choose the better of two responses (A or B), with feedback",
                                    "RelativeRequest", "RelativeResponse", "gradeRelative"),
            "/reward": post("one reward per (prompt, response): the absolute score mapped to a float",
                            "RewardRequest", "RewardResponse", "reward"),
        },
        "components": {"schemas": schemas(c)},
    }
