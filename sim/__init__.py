"""Built-in ArduCopter-like simulator for groundctl.

Standard library, pymavlink and numpy only: never import groundctl from here,
so that testing groundctl against the sim tests it against something independent.
"""
