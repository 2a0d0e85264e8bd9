"""A loopback RTSP server for tests: serves one H.264 MP4 file at its own pace.

Run with Debian's /usr/bin/python3 (it needs GStreamer's introspection
bindings, which the project's virtual environment cannot import):

    /usr/bin/python3 eval/rtsp_server.py --port 8554 --file clip.mp4

Clients read ``rtsp://127.0.0.1:PORT/stream``. Each client gets the file
from its start, in real time. The server prints ``ready`` once it listens.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", required=True)
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( filesrc location={args.file} ! qtdemux ! h264parse ! "
        "rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    server.get_mount_points().add_factory("/stream", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on port {args.port}")
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
