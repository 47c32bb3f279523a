"""Every console route: sign-in, the operator's pages, the registry and log pages, the
agency portal."""

from fastapi import APIRouter

from gateway.console import auth_routes, operator_routes, portal_routes, registry_routes

router = APIRouter()
for module in (auth_routes, operator_routes, registry_routes, portal_routes):
    router.include_router(module.router)
