"""The WSGI application gunicorn serves: privacyIDEA with the benchmark's pi.cfg."""

import os

from privacyidea.app import create_app

application = create_app(
    config_name="production", config_file=os.environ["PRIVACYIDEA_CONFIGFILE"], silent=True
)
