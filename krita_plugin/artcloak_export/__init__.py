"""artcloak for Krita: File > Export Protected…

Installed by ``artcloak install krita`` together with ``protocol.py`` and ``client.py``
(copies of the core's: the worker protocol, and the worker client shared with the GIMP
plug-in) and ``worker.json`` (which Python runs the worker). Outside Krita (tests, tools)
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
