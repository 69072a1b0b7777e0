"""What the commands (train.py, eval.py, chat.py, inspect_masks.py, minifc.export, minifc.reference) share.

    parser = argparse.ArgumentParser(description=..., formatter_class=HelpFormatter)
"""

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows every flag's default: "(default: X)" is added to a help text that does not already say
    it. A default of None or False (an unset option, an off switch) is not shown: the help says what then
    happens when it is not obvious."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):  # not 0
            return action.help
        return super()._get_help_string(action)
