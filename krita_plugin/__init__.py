"""The Krita plugin's files, shipped inside artcloak as ``artcloak.krita_plugin``.

Nothing here runs in artcloak's Python: ``artcloak install krita`` copies ``artcloak_export/``
and its ``.desktop`` file into Krita's ``pykrita`` folder, with ``protocol.py`` and
``client.py`` beside them.
"""
