"""LoRaWAN and NB-IoT uplinks: network-server events, payload decoders and the uplink channels."""
