"""``python server.py [OPTIONS]`` is ``python -m server [OPTIONS]``: the command the seed's guide names.

The name ``server`` imports the ``server/`` package beside this file, not this file: a directory
package comes before a same-named module on the import path. ``python server.py --help`` lists
the options.
"""

import sys

from server.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
