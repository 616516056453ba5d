"""Placeholder: being written."""

from flask_smorest import Blueprint

blp = Blueprint("places", __name__)
