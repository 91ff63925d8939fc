"""`python -m sim ...`: parse flags, build the vehicles, print SIM READY lines, run."""

from __future__ import annotations

import argparse
import math
import signal
import sys

from .link import TcpServer, UdpPort
from .runner import Runner
from .vehicle import Options, Vehicle

DEFAULT_HOME = "-35.363261,149.165230,584,353"
COUNT_SPACING_M = 5.0


def _hostport(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host or "127.0.0.1", int(port)


def _floats(s: str, n: int) -> tuple[float, ...]:
    parts = [float(x) for x in s.split(",")]
    if len(parts) != n:
        raise argparse.ArgumentTypeError(f"expected {n} comma separated numbers, got {s!r}")
    return tuple(parts)


def _number(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{s!r} is not a finite number")
    return v


def _positive(s: str) -> float:
    v = _number(s)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {s}")
    return v


def _rotor_count(s: str) -> int:
    try:
        n = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a whole number") from None
    if not 3 <= n <= 16:
        raise argparse.ArgumentTypeError(f"must be between 3 and 16, got {n}")
    return n


def _temperature(s: str) -> float:
    v = _number(s)
    if not -60 <= v <= 60:
        raise argparse.ArgumentTypeError(f"must be between -60 and 60 degC, got {s}")
    return v


def _efficiency(s: str) -> float:
    v = _number(s)
    if not 0.1 <= v <= 2.0:
        raise argparse.ArgumentTypeError(f"must be between 0.1 and 2.0, got {s}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sim", description=__doc__)
    p.add_argument("--home", default=DEFAULT_HOME, type=lambda s: _floats(s, 4),
                   help="LAT,LON,ALT_AMSL_M,HEADING_DEG (default: ArduPilot SITL's CMAC)")
    p.add_argument("--tcp", action="append", default=[], metavar="HOST:PORT",
                   help="TCP server (port 0 = ephemeral); several clients may connect")
    p.add_argument("--udp-out", action="append", default=[], metavar="HOST:PORT",
                   help="send to a GCS listening at HOST:PORT; answer whoever sends to us")
    p.add_argument("--udp-in", action="append", default=[], metavar="HOST:PORT",
                   help="listen on HOST:PORT; reply to the last sender")
    p.add_argument("--sysid", type=int, default=1)
    p.add_argument("--count", type=int, default=1, help="vehicles in this process, sysids sysid..")
    p.add_argument("--speedup", type=float, default=1.0)
    p.add_argument("--wind-mps", type=float, default=0.0)
    p.add_argument("--wind-dir-deg", type=float, default=0.0, help="direction the wind comes FROM")
    p.add_argument("--payload-kg", type=float, default=0.0, help="mass of the parcel once grabbed")
    p.add_argument("--battery-wh", type=_positive, default=100.0)
    p.add_argument("--battery-pct", type=float, default=100.0, help="charge at start")
    p.add_argument("--mass-kg", type=_positive, default=3.0,
                   help="airframe empty mass, battery included (kg)")
    p.add_argument("--rotors", type=_rotor_count, default=4, help="number of rotors")
    p.add_argument("--rotor-diameter-m", type=_positive, default=0.46, help="rotor diameter (m)")
    p.add_argument("--drag-area-m2", type=_positive, default=0.07,
                   help="body drag area Cd x A (m^2)")
    p.add_argument("--temp-c", type=_temperature, default=None,
                   help="ambient temperature at home (degC; default: ISA for the home altitude)")
    p.add_argument("--efficiency", type=_efficiency, default=1.0,
                   help="multiplier on the power chain's efficiency: 0.8 draws 1/0.8 the power")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loss", type=float, default=0.0, help="drop each packet with this probability")
    p.add_argument("--cut-after-takeoff", type=float, default=None, metavar="S",
                   help="cut the link S sim seconds after takeoff ...")
    p.add_argument("--cut-for", type=float, default=0.0, metavar="S", help="... for S sim seconds")
    p.add_argument("--gripper-jam", action="store_true",
                   help="gripper reports released but the parcel stays attached")
    p.add_argument("--lose-command", action="append", default=[], type=_lose_command, metavar="ID[:N]",
                   help="drop the first N (1) COMMAND_LONG/INT with this MAV_CMD id on receipt, as a lossy "
                        "link would: the sender's retry is what arrives")
    p.add_argument("--obstacle", action="append", default=[], type=lambda s: _floats(s, 4),
                   metavar="LAT,LON,RADIUS_M,HEIGHT_M")
    p.add_argument("--terrain", action="append", default=[], type=lambda s: _floats(s, 4),
                   metavar="LAT,LON,RADIUS_M,HEIGHT_M",
                   help="the ground within RADIUS_M is HEIGHT_M above home (negative: below): a valley "
                        "or a hilltop; elsewhere the ground is flat at home")
    p.add_argument("--no-ekf-s", type=float, default=5.0,
                   help="sim seconds until the EKF has an origin and position")
    return p


def _lose_command(text: str) -> tuple[int, int]:
    cmd, _, n = text.partition(":")
    try:
        out = int(cmd), int(n or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MAV_CMD id[:count], got {text!r}") from None
    if out[1] < 1:
        raise argparse.ArgumentTypeError(f"count must be at least 1, got {out[1]}")
    return out


def _raise_fd_limit() -> None:
    # each vehicle holds a listener plus one socket per client: hundreds of vehicles
    # need more than the usual soft limit of 1024
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else 65536
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ImportError, ValueError, OSError):
        pass


def _glue_negative_values(argv: list[str]) -> list[str]:
    """Let `--home -35.3,149.1,...` through: argparse takes a leading '-' for an option."""
    out = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--home", "--obstacle", "--terrain") and i + 1 < len(argv):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(_glue_negative_values(argv))
    if not (args.tcp or args.udp_out or args.udp_in):
        args.tcp = ["127.0.0.1:5760"]
    _raise_fd_limit()
    runner = Runner(args.speedup)
    lat, lon, alt, hdg = args.home
    for i in range(args.count):
        # a few metres apart along east so vehicles do not share a spot
        dlon = (i * COUNT_SPACING_M) / (111319.49 * max(math.cos(math.radians(lat)), 0.01))
        opts = Options(home=(lat, lon + dlon, alt, hdg), speedup=args.speedup,
                       wind_mps=args.wind_mps, wind_dir_deg=args.wind_dir_deg,
                       payload_kg=args.payload_kg, battery_wh=args.battery_wh,
                       battery_pct=args.battery_pct, mass_kg=args.mass_kg,
                       rotors=args.rotors, rotor_diameter_m=args.rotor_diameter_m,
                       drag_area_m2=args.drag_area_m2, temp_c=args.temp_c,
                       efficiency=args.efficiency, seed=args.seed,
                       loss=args.loss, cut_after_takeoff=args.cut_after_takeoff,
                       cut_for=args.cut_for, gripper_jam=args.gripper_jam,
                       lose_command=dict(args.lose_command),
                       obstacles=list(args.obstacle), terrain=list(args.terrain), no_ekf_s=args.no_ekf_s)
        v = Vehicle(runner, args.sysid + i, opts)
        runner.vehicles.append(v)
        urls = []
        for spec in args.tcp:
            host, port = _hostport(spec)
            urls.append(TcpServer(v, runner, host, port + i if port else 0).url())
        for spec in args.udp_in:
            host, port = _hostport(spec)
            urls.append(UdpPort(v, runner, host, port + i if port else 0, out=False).url())
        for spec in args.udp_out:
            # every vehicle talks to the same GCS, each from its own socket; the GCS tells
            # them apart by system id
            host, port = _hostport(spec)
            urls.append(UdpPort(v, runner, host, port, out=True).url())
        print(f"SIM READY sysid={v.sysid} " + " ".join(urls), flush=True)

    def stop(*_):
        runner.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        runner.run()
    finally:
        for v in runner.vehicles:
            for link in list(v.links):
                if getattr(link, "closable", False):
                    link.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
