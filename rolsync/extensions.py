"""Flask extensions, created unbound; create_app() binds them."""
from typing import TYPE_CHECKING

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, Session

# Stable constraint names so Alembic migrations agree on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ScopedSession(Session):
    """The type of `db.session`: a Session, plus scoped_session's `remove()` that ends it."""

    def remove(self) -> None: ...


class Database(SQLAlchemy):
    """Flask-SQLAlchemy, its session typed as what the code uses it as.

    `db.session` is a scoped_session: it hands every call to the Session of
    the current app context, so domain code that takes a `Session` can be
    given it. Only `db.session.remove()` is scoped_session's own.
    """

    session: ScopedSession  # type: ignore[assignment]


db = Database(model_class=Base)

# The declarative base of every model. Flask-SQLAlchemy builds `db.Model` at
# run time from Base, which a type checker cannot follow; models subclass this.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model
migrate = Migrate()
csrf = CSRFProtect()
login_manager = LoginManager()
