"""The Socket.IO side: event handlers, the packet codec, connections, limits and live streams."""
