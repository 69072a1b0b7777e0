"""Model answers built from BFCL's own gold answers, for the tests of minifc's BFCL checker.

    calls = gold_answer(entry)                  # [(name, arguments)]: what a perfect model answers
    source = java_source(value, "ArrayList", "long")   # 'new ArrayList<>(Arrays.asList(101L, 202L))'

An entry here is a BFCL question row with its "ground_truth" added ([] for (ir)relevance). The answer
takes, for every gold parameter, its first acceptable value other than "" (a parameter that lists only
"" is left out, or given as "" where the schema requires it); a dict value takes the first acceptable value of each key, a list of dicts likewise
dict by dict, as BFCL's checker compares them. Java and JavaScript values are written as the source
text that BFCL's converter reads back as that value (String items of a Java Array unquoted: BFCL keeps
quotes there). This is test-side knowledge, independent of minifc/bfclcheck.py.
"""

import math
import re

PYTHON_TYPES = {"string": str, "integer": int, "float": float, "boolean": bool, "array": list, "tuple": list,
                "dict": dict, "any": str}


def language(category: str) -> str:
    return "javascript" if "javascript" in category else "java" if "java" in category else "python"


OMIT = object()  # a parameter the answer leaves out


def first(alternatives):
    """The first acceptable value other than "", or OMIT when there is none; a value written flat (not
    as a list of acceptable values) is itself."""
    return next((a for a in alternatives if a != ""), OMIT) if isinstance(alternatives, list) else alternatives


def gold_value(alternative, schema: dict):
    """A model's value for one acceptable value of a parameter (dicts and lists of dicts unpacked)."""
    if isinstance(alternative, dict) and schema.get("type") in ("dict", "HashMap"):
        return {key: first(value) for key, value in alternative.items() if first(value) is not OMIT}
    items = (schema.get("items") or {}).get("type")
    if isinstance(alternative, list) and items == "dict" and all(isinstance(a, dict) for a in alternative):
        return [gold_value(a, {"type": "dict"}) for a in alternative]
    return alternative


def function_of(entry: dict, name: str) -> dict:
    return next(f for f in entry["function"] if f["name"] == name)


def gold_answer(entry: dict) -> list[tuple[str, dict]]:
    """[(name, arguments)]: the gold calls, each parameter at its first acceptable value. A parameter
    the schema does not know is left out when the gold lists "" for it; a parameter the schema requires
    while the gold lists only "" gets the value "" (BFCL's checker accepts "" as a value too)."""
    calls = []
    for call in entry["ground_truth"]:
        (name, parameters), = call.items()
        properties = function_of(entry, name)["parameters"]["properties"]
        required = function_of(entry, name)["parameters"].get("required", [])
        arguments = {}
        for param, alternatives in parameters.items():
            value = first(alternatives)
            if "" in alternatives and (param not in properties or value is OMIT):
                if param in properties and param in required:
                    arguments[param] = ""
                continue
            if value is OMIT:  # no acceptable value at all ([]): nothing passes; write the parameter anyway
                value = ""
            schema = properties.get(param, {})
            value = gold_value(value, schema)
            if language(entry["category"]) != "python":
                value = source(value, schema, language(entry["category"]))
            arguments[param] = value
        calls.append((name, arguments))
    return calls


def source(value, schema: dict, lang: str) -> str:
    """The value as Java or JavaScript source text for a parameter of this schema."""
    item_type = (schema.get("items") or {}).get("type")
    return java_source(value, schema["type"], item_type) if lang == "java" else js_source(value, schema["type"],
                                                                                          item_type)


def java_source(value, type_name: str, item_type: str | None = None) -> str:
    if isinstance(value, str) and type_name not in ("Array", "ArrayList", "HashMap"):
        return value  # String, any, char, or a variable name written for a typed value
    if type_name == "boolean":
        return "true" if value else "false"
    if type_name == "long":
        return f"{value}L"
    if type_name == "float":
        return f"{float(value)!r}f"
    if type_name == "double":
        return repr(float(value))
    if type_name == "Array" and isinstance(value, list):
        return f"new {item_type or 'Object'}[]{{{', '.join(java_item(v, item_type, quote=False) for v in value)}}}"
    if type_name == "ArrayList" and isinstance(value, list):
        if not value:
            return "new ArrayList<>()"
        return f"new ArrayList<>(Arrays.asList({', '.join(java_item(v, item_type, quote=True) for v in value)}))"
    if type_name == "HashMap" and isinstance(value, dict):
        puts = " ".join(f'put("{key}", {java_item(v, None, quote=True)});' for key, v in value.items())
        return f"new HashMap<String, Object>() {{{{ {puts} }}}}"
    return str(value)


def java_item(value, item_type: str | None, quote: bool) -> str:
    if isinstance(value, str):
        return f'"{value}"' if quote or item_type is None else value
    if isinstance(value, bool):
        return "true" if value else "false"
    return java_source(value, item_type or "integer")


def js_source(value, type_name: str, item_type: str | None = None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"' if type_name == "String" else value  # BFCL strips the quotes
    if isinstance(value, float) and type_name in ("float", "any", "array", "dict"):
        return js_number(value)
    if isinstance(value, list):
        return "[" + ", ".join(js_item(v, item_type) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {js_item(v, None)}" for key, v in value.items()) + "}"
    return f"{value}n" if type_name == "Bigint" else str(value)


def js_item(value, item_type: str | None) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return js_source(value, item_type or "any")


def js_number(value: float) -> str:
    """A float as text matching BFCL's JavaScript float pattern -?digits(.digits)?"""
    assert math.isfinite(value)
    text = repr(value)
    return text if re.fullmatch(r"-?\d+(\.\d+)?", text) else f"{value:.20f}".rstrip("0").rstrip(".")
