"""Field channels: transports, bus schedulers, protocol codecs and drivers."""
