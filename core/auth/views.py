"""Placeholder: being written."""

from flask_smorest import Blueprint

blp = Blueprint("auth", __name__)
