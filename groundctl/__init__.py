"""groundctl: a ground station for drone parcel delivery."""

__version__ = "0.1.0"
