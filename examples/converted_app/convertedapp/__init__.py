"""The same application, converted to pyramid_sendmail."""

from pyramid.config import Configurator


def main(global_config, **settings):
    """Create the WSGI application."""
    with Configurator(settings=settings) as config:
        config.include("pyramid_tm")
        config.include("pyramid_sendmail")
        config.add_route("contact", "/contact")
        config.add_route("newsletter", "/newsletter")
        config.add_route("ping", "/ping")
        config.scan(".views")
    return config.make_wsgi_app()
