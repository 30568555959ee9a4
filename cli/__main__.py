"""``python -m bbans_cli`` runs the ``bbans`` command line."""
from .main import main

if __name__ == "__main__":
    main()
