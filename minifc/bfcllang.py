"""BFCL's languages: its type names, and how it reads Java and JavaScript values written as source text.

    language_of("simple_java")                        -> "java"   ("javascript", else "python")
    TYPES["java"]["long"]                             -> int      (the Python type a value must end up as)
    convert("new int[]{1, 2}", "Array", "integer", "java")   -> [1, 2]
    convert("5", "long", None, "java")                -> "5"      (a long needs its L: "5L" -> 5)

The Berkeley Function Calling Leaderboard shows Java and JavaScript functions to the model with every
parameter typed "string", and the model answers with source text ("new ArrayList<>(Arrays.asList(1, 2))",
"{key: 'value'}", "42L"). Its checker turns that text into a value with a set of regular expressions,
then type-checks and compares the value as for Python. These rules are reproduced here one for one,
quirks included, because they decide which answers pass:
  - text that does not fit its type's pattern stays a string (and then fails the type check unless the
    gold answer itself is a string): a Java long needs its "L", a float its "f";
  - Java Array items are converted by their own type, so String items keep their quotes
    ('new String[]{"a"}' -> ['"a"']) while ArrayList String and char items lose them;
  - Java ArrayList items of type "any" stay strings ("42", "true");
  - JavaScript arrays and objects are split on commas, without regard to nesting or quotes.
Where BFCL's converter raises (an int of more than 4300 digits, Set, Queue, ...), convert() raises
ValueError, TypeError or NotImplementedError; the checker counts such an answer wrong.
"""

import re

# BFCL type name -> the Python type the (converted) value must have, per language.
TYPES = {
    "python": {"string": str, "integer": int, "float": float, "boolean": bool, "array": list, "tuple": list,
               "dict": dict, "any": str},
    "java": {"byte": int, "short": int, "integer": int, "float": float, "double": float, "long": int,
             "boolean": bool, "char": str, "Array": list, "ArrayList": list, "Set": set, "HashMap": dict,
             "Hashtable": dict, "Queue": list, "Stack": list, "String": str, "any": str},
    "javascript": {"String": str, "integer": int, "float": float, "Bigint": int, "Boolean": bool, "dict": dict,
                   "array": list, "any": str},
}
# Types whose items BFCL converts and checks one level deep ("items": {"type": ...} in the schema).
NESTED = {"python": ("array", "tuple"), "java": ("Array", "ArrayList", "array"),
          "javascript": ("Array", "ArrayList", "array")}

_INT = r"^-?\d+$"
_JAVA_FLOAT = r"^-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]$"
_JAVA_DOUBLE = r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$"
_JAVA_LONG = r"^-?\d+[lL]$"


def language_of(category: str) -> str:
    """The language of a BFCL category, by BFCL's rule (a substring of the category name)."""
    return "javascript" if "javascript" in category else "java" if "java" in category else "python"


def convert(text: str, type_name: str, item_type: str | None, language: str):
    """The value BFCL's checker reads from `text`, a parameter written as Java or JavaScript source."""
    if language == "java":
        return _java(text, type_name, item_type)
    if language == "javascript":
        return _javascript(text, type_name, item_type)
    raise ValueError(f"no source-text conversion for {language}")


# ----------------------------------------------------------------------------- Java

def _java(text: str, type_name: str, item_type: str | None = None):
    if type_name in ("byte", "short", "integer"):
        return int(text) if re.match(_INT, text) else text
    if type_name == "float":
        return float(re.sub(r"[fF]$", "", text)) if re.match(_JAVA_FLOAT, text) else text
    if type_name == "double":
        return float(text) if re.match(_JAVA_DOUBLE, text) else text
    if type_name == "long":
        return int(re.sub(r"[lL]$", "", text)) if re.match(_JAVA_LONG, text) else text
    if type_name == "boolean":
        return text == "true" if text in ("true", "false") else text
    if type_name in ("char", "String", "any"):  # BFCL's char pattern never matches: chars stay as written
        return text
    if type_name == "Array":
        return _java_array(text, item_type)
    if type_name == "ArrayList":
        return _java_arraylist(text, item_type)
    if type_name == "HashMap":
        return _java_hashmap(text)
    if type_name in TYPES["java"]:
        raise NotImplementedError(f"BFCL does not convert Java {type_name} values")
    raise ValueError(f"BFCL knows no Java type {type_name!r}")


def _java_item(text: str, item_type: str | None):
    return _java(text, item_type) if item_type else _java_untyped(text)


def _java_array(text: str, item_type: str | None):
    """new T[]{a, b}: items converted by their type (String items keep their quotes)."""
    match = re.search(r"new\s+\w+\[\]\s*\{(.*?)\}", text)
    if not match:
        return text
    return [_java_item(part.strip(), item_type) for part in match.group(1).split(",") if part.strip()]


def _java_arraylist(text: str, item_type: str | None):
    """new ArrayList<>(Arrays.asList(a, b)), new ArrayList<>() {{ add(a); add(b); }}, new ArrayList<>()."""
    if match := re.search(r"new\s+ArrayList<\w*>\(Arrays\.asList\((.+?)\)\)", text):
        parts = match.group(1).split(",")
    elif match := re.search(r"new\s+ArrayList<\w*>\(\)\s*\{\{\s*(.+?)\s*\}\}", text, re.DOTALL):
        parts = re.findall(r"add\((.+?)\)", match.group(1))
    elif re.search(r"new\s+ArrayList<\w*>\(\)", text):
        return []
    else:
        return text
    parts = [part.strip() for part in parts]
    if item_type in ("char", "String"):
        return [part[1:-1] for part in parts]  # the quotes dropped, whatever they were
    return [_java_item(part, item_type) for part in parts]


def _java_hashmap(text: str):
    """new HashMap<K, V>() {{ put("k", v); ... }} -> {"k": v}; values read without a type."""
    match = re.search(r"new\s+HashMap<.*?>\s*\(\)\s*\{\s*\{?\s*(.*?)\s*\}?\s*\}", text, re.DOTALL)
    if match:
        return {key: _java_untyped(value.strip())
                for key, value in re.findall(r"put\(\"(.*?)\",\s*(.*?)\)", match.group(1))}
    return {} if re.search(r"new\s+HashMap<.*?>\s*\(\)", text) else text


def _java_untyped(text: str):
    """A Java literal of unknown type: boolean, "string", long, float, then int or double, else the text."""
    if text in ("true", "false"):
        return text == "true"
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    if re.match(_JAVA_LONG, text):
        return int(text[:-1])
    if re.match(_JAVA_FLOAT, text):
        return float(re.sub(r"[fF]$", "", text))
    return _number_or_text(text)


def _number_or_text(text: str):
    """Python's int(), else float(), else the text itself (so "1_000" is 1000 and "nan" a float)."""
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return text


# ----------------------------------------------------------------------------- JavaScript

def _javascript(text: str, type_name: str, item_type: str | None = None):
    if type_name == "String":
        quoted = len(text) >= 1 and text[0] == text[-1] and text[0] in "\"'"
        return text[1:-1] if quoted else text
    if type_name == "integer":
        return int(text) if re.match(_INT, text) else text
    if type_name == "float":
        return float(text) if re.match(r"^-?\d+(\.\d+)?$", text) else text
    if type_name == "Bigint":
        return int(text[:-1]) if re.match(r"^-?\d+n$", text) else text
    if type_name == "Boolean":
        return text == "true" if text in ("true", "false") else text
    if type_name == "dict":
        return _js_object(text.strip())
    if type_name == "array":
        return _js_array(text.strip(), item_type)
    if type_name == "any":
        return text
    raise ValueError(f"BFCL knows no JavaScript type {type_name!r}")


def _js_array(code: str, item_type: str | None = None):
    """[a, b] or new Array(a, b), split on commas; [[..], [..]] as a list of lists of untyped values.
    Anything failing inside (an unknown item type, say) leaves the text as it was, as in BFCL."""
    try:
        if two_d := re.match(r"\[\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\]|\bnew\s+Array\(\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\)",
                             code):
            rows = []
            for i, row in enumerate(re.findall(r"\[(.*?)\]", two_d.group(0))):
                row = row.strip()
                row = row[1:] if i == 0 and row.startswith("[") else row
                rows.append([_js_untyped(part.strip()) for part in row.split(",")])
            return rows
        match = re.match(r"\[(.*?)\]|\bnew\s+Array\((.*?)\)", code)
        if not match:
            return code
        inside = (match.group(1) if match.group(1) is not None else match.group(2) or "").strip()
        parts = [part.strip() for part in inside.split(",")] if inside else []
        if item_type:  # a quoted item is read as if its items were strings (only matters for nested arrays)
            return [_javascript(part, item_type, "String" if part[:1] in ("'", '"') else None) for part in parts]
        return [_js_untyped(part) for part in parts]
    except Exception:  # BFCL's bare except: the text is kept as it was
        return code


def _js_object(code: str):
    """{key: value, ...} up to the first "}", split into pairs; values: [..] arrays, {..} objects, else
    untyped with their quotes stripped."""
    if code == "{}":
        return {}
    match = re.match(r"\{(.*?)\}", code)
    if not match:
        return code
    try:
        result = {}
        for key, value in re.findall(r"([^:]+):\s*(.*?)(?:,\s*(?=[^,]+:)|$)", match.group(1)):
            key, value = key.strip().strip("'\""), value.strip()
            if value.startswith("[") and value.endswith("]"):
                result[key] = _js_array(value)
            elif value.startswith("{") and value.endswith("}"):
                result[key] = _js_object(value)
            else:
                result[key] = _js_untyped(value.strip("'\""))
        return result
    except Exception:  # as in BFCL: the text is kept as it was
        return code


def _js_untyped(text: str):
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if len(text) >= 1 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return _number_or_text(text)
