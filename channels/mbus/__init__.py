"""M-Bus (EN 13757-2/-3): link and application codecs, the polling driver and the scanner."""
