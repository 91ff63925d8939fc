import sys

from groundctl.faces.api.serve import main

sys.exit(main())
