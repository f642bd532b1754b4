"""The development servers moved to `devkit`; these names stay aliases of them for tests written before."""
import sys

from devkit import dovecot, oauth_server

sys.modules[f"{__name__}.dovecot"] = dovecot
sys.modules[f"{__name__}.oauth_server"] = oauth_server
