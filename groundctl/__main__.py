from groundctl.faces.cli import app

app(prog_name="groundctl")
