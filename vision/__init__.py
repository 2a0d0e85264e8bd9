"""The camera pipeline: frames in, events with evidence out.

One subpackage per stage: ``ingest`` (sources, pre-roll ring buffer),
``detect`` (ONNX detector, tracker), ``analyze`` (throw analyzer, zones and
rules) and ``evidence`` (clips, snapshots, object store). ``worker`` strings
them together for one camera and hands its events to a ``TicketSink``. Nothing
here knows of HTTP or the database.
"""
