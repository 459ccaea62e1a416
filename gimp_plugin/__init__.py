"""The GIMP 3 plug-in's files, shipped inside artcloak as ``artcloak.gimp_plugin``.

Nothing here runs in artcloak's Python: ``artcloak install gimp`` copies ``artcloak-export/``
into GIMP's ``plug-ins`` folder, with ``protocol.py`` and ``client.py`` beside it.
"""
