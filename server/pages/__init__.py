"""The HTML pages, beside the JSON API (`server/api/`); their templates, catalogues and static
files are in `web/`, which imports nothing from here."""
from server.pages import office, portal, signing, staff

routes = [*portal.routes, *staff.routes, *office.routes, *signing.routes]
