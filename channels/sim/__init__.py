"""Simulated meters that speak the real protocols (DESIGN rule 9).

``models`` holds the physics (pure functions of time), ``slave`` the Modbus
slaves and their Twisted protocols, ``field`` a whole site built from its
config and put on ptys or TCP ports.
"""
