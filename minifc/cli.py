"""How every command ends: exit codes, the one-line error, MINIFC_DEBUG (for train.py, eval.py,
inspect_masks.py and python -m minifc.export).

    if __name__ == "__main__":
        run(main, "train.py")

Exit codes: 0 done; 1 an error in the input or the setup, told in one line that names the file, field
and the fix; 2 a usage error (argparse: an unknown flag, a missing value); 130 interrupted (Ctrl-C or
SIGTERM; train.py saves a checkpoint first). With MINIFC_DEBUG=1 every one-line error also prints its
full traceback (the exception it came from included).
"""

import os
import sys
import traceback

import torch

INTERRUPTED = 130


def debugging() -> bool:
    return os.environ.get("MINIFC_DEBUG", "") not in ("", "0")


def run(main, name: str):
    """Run a command's main(): a SystemExit with a message (the commands' own one-line errors) and a
    ValueError or OSError it did not catch (bad input: their messages name it) end with one line on stderr
    and exit code 1; Ctrl-C with 130."""
    try:
        main()
    except SystemExit as stop:
        if debugging() and isinstance(stop.code, str):
            traceback.print_exc()
        raise
    except KeyboardInterrupt:
        if debugging():
            traceback.print_exc()
        print(f"\n{name}: interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED)
    except (ValueError, OSError) as error:
        if debugging():
            traceback.print_exc()
        sys.exit(f"{name}: {error}")


def device_error(device: str) -> str | None:
    """Why torch cannot compute on `device` ("cuda", "cuda:1", "cpu", ...), or None when it can."""
    try:
        kind = torch.device(device)
    except RuntimeError as error:
        return f"--device {device}: not a device torch knows ({error}); use cuda, cuda:N or cpu"
    if kind.type == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build of torch" if torch.version.cuda is None else "no GPU visible to it"
        return (f"--device {device}: CUDA is not available (torch {torch.__version__}: {build}); drop --device "
                "to use the CPU")
    if kind.type == "cuda" and (kind.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        return f"--device {device}: there are {count} CUDA device(s); use cuda:0 to cuda:{count - 1}"
    return None
