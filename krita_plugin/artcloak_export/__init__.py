"""artcloak for Krita: File > Export Protected…

Installed by ``artcloak install krita`` together with ``protocol.py`` (a copy of the
core's) and ``worker.json`` (which Python runs the worker). Outside Krita (tests, tools)
importing this package registers nothing.
"""

try:
    from krita import Krita
except ImportError:  # not running inside Krita
    Krita = None

EXTENSION = None  # the registered extension, for scripts and tests
if Krita is not None:
    from .extension import ArtcloakExtension

    EXTENSION = ArtcloakExtension(Krita.instance())
    Krita.instance().addExtension(EXTENSION)
