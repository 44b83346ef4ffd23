"""Text tests build the tokenizer files into a throw-away cache instead of the user's ~/.cache."""

import os
import tempfile

os.environ.setdefault("LATENTGRAPH_CACHE", tempfile.mkdtemp(prefix="latentgraph-test-cache-"))
