"""The demo's recruitment agency and its CRM: companies, contacts, candidates and the people around them.

`csv_text()` is the CRM in the `flask crm load` format, and `load()` loads it
through the same code that command uses. Every address is under a reserved
top-level domain (`.example`, `.test`), so nothing here can reach a real person.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolsync import crm
from rolsync.documents import DocumentStore
from rolsync.models import Company

AGENCY = "Harbour Talent"
AGENCY_DOMAIN = "harbour-talent.test"
"""The own domain: mail among colleagues here is left out of the CRM."""


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    company: str = ""
    title: str = ""

    @property
    def first_name(self) -> str:
        return self.name.split()[0]

    @property
    def header(self) -> str:
        """`Name <address>` for a From, To or Cc header."""
        return f"{self.name} <{self.email}>"


@dataclass(frozen=True)
class Role:
    title: str
    company: str
    salary: str


CONSULTANT = Person("Sam Carter", f"sam.carter@{AGENCY_DOMAIN}", AGENCY, "Senior Consultant")
ADMIN = Person("Alex Reid", f"alex.reid@{AGENCY_DOMAIN}", AGENCY, "Operations Director")
COLLEAGUES = (
    Person("Lee Morgan", f"lee.morgan@{AGENCY_DOMAIN}", AGENCY, "Consultant"),
    Person("Nina Patel", f"nina.patel@{AGENCY_DOMAIN}", AGENCY, "Resourcer"),
    Person("Harbour Talent Office", f"office@{AGENCY_DOMAIN}", AGENCY),
    ADMIN,
)

COMPANIES = {
    "Brightwave Energy": "brightwave.example",
    "Brightwave Grid Services": "grid.brightwave.example",
    "Northbank Capital": "northbank.example",
    "Northbank Insurance": "northbank-insurance.example",
    "Kestrel Logistics": "kestrel-logistics.example",
    "Alder Health": "alderhealth.example",
    "Quayside Software": "quayside.example",
    "Meridian Retail Group": "meridian-retail.example",
}

RELATED_COMPANIES = (
    ("Brightwave Energy", "Brightwave Grid Services"),
    ("Northbank Capital", "Northbank Insurance"),
    ("Meridian Retail Group", "Kestrel Logistics"),  # Kestrel runs Meridian's warehouses
)

SHARED_ADDRESS = "hiring@quayside.example"
"""Quayside's team mailbox, entered on two contacts: mail from or to it is a duplicate warning."""

CONTACTS = (
    Person("Helen Shaw", "helen.shaw@brightwave.example", "Brightwave Energy", "Head of Data Engineering"),
    Person("Marcus Webb", "marcus.webb@brightwave.example", "Brightwave Energy", "Talent Acquisition Lead"),
    Person("Olivia Grant", "olivia.grant@grid.brightwave.example", "Brightwave Grid Services", "Control Room Manager"),
    Person("Daniel Price", "daniel.price@northbank.example", "Northbank Capital", "Chief Technology Officer"),
    Person("Ruth Ellis", "ruth.ellis@northbank.example", "Northbank Capital", "HR Business Partner"),
    Person("Sofia Marín", "sofia.marin@northbank-insurance.example", "Northbank Insurance", "Chief Actuary"),
    Person("James O'Connor", "james.oconnor@kestrel-logistics.example", "Kestrel Logistics", "Operations Director"),
    Person("Aisha Rahman", "aisha.rahman@kestrel-logistics.example", "Kestrel Logistics", "People Partner"),
    Person("Fiona Clarke", "fiona.clarke@alderhealth.example", "Alder Health", "Director of Clinical Systems"),
    Person("Ben Foster", "ben.foster@alderhealth.example", "Alder Health", "Recruitment Coordinator"),
    Person("Grace Liu", "grace.liu@quayside.example", "Quayside Software", "Head of Talent"),
    Person("Priya Nair", SHARED_ADDRESS, "Quayside Software", "VP Engineering"),
    Person("Tom Becker", SHARED_ADDRESS, "Quayside Software", "Engineering Manager"),
    Person("Carlos Mendes", "carlos.mendes@meridian-retail.example", "Meridian Retail Group", "Chief Digital Officer"),
    Person("Hannah Brooks", "hannah.brooks@meridian-retail.example", "Meridian Retail Group", "HR Manager"),
)

CANDIDATES = (
    Person("Anna Kowalski", "anna.kowalski@post.example"),
    Person("José García", "jose.garcia@mailbox.example"),
    Person("Zoë Müller", "zoe.mueller@webmail.example"),
    Person("Kwame Mensah", "kwame.mensah@inbox.example"),
    Person("Chloé Dubois", "chloe.dubois@post.example"),
    Person("Li Wei", "li.wei@mailbox.example"),
    Person("Ingrid Larsen", "ingrid.larsen@webmail.example"),
    Person("Oluwaseun Adeyemi", "seun.adeyemi@inbox.example"),
    Person("Ravi Shankar", "ravi.shankar@post.example"),
    Person("Emma Hughes", "emma.hughes@mailbox.example"),
    Person("Tomasz Nowak", "tomasz.nowak@webmail.example"),
    Person("Fatima Zahra", "fatima.zahra@inbox.example"),
    Person("Lucas Silva", "lucas.silva@post.example"),
    Person("Hiroshi Tanaka", "hiroshi.tanaka@mailbox.example"),
    Person("Sara Lindqvist", "sara.lindqvist@webmail.example"),
    Person("Noah Fischer", "noah.fischer@inbox.example"),
    Person("Amelia Clarke", "amelia.clarke@post.example"),
    Person("Omar Haddad", "omar.haddad@mailbox.example"),
    Person("Ella Byrne", "ella.byrne@webmail.example"),
    Person("Dmitri Volkov", "dmitri.volkov@inbox.example"),
    Person("Grace Okafor", "grace.okafor@post.example"),
    Person("Felix Wagner", "felix.wagner@mailbox.example"),
    Person("Maya Cohen", "maya.cohen@webmail.example"),
    Person("Jack Thompson", "jack.thompson@inbox.example"),
    Person("Leila Ahmadi", "leila.ahmadi@post.example"),
    Person("Pablo Ortega", "pablo.ortega@mailbox.example"),
    Person("Nora Kelly", "nora.kelly@webmail.example"),
    Person("Yusuf Demir", "yusuf.demir@inbox.example"),
    Person("Isla Campbell", "isla.campbell@post.example"),
    Person("Mateo Rossi", "mateo.rossi@mailbox.example"),
)

STRANGERS = (
    Person("Kevin Lowe", "kevin.lowe@leadgen-partners.example", "LeadGen Partners"),
    Person("Rosa Jiménez", "rosa.jimenez@post.example"),
    Person("Peter Hall", "peter.hall@webmail.example"),
    Person("Office Supplies Direct", "orders@officesupplies.example"),
    Person("Mia Schneider", "mia.schneider@inbox.example"),
)
"""People the CRM does not know: their mail is skipped (`no_match`)."""

JOB_BOARD = Person("TalentBoard Jobs", "no-reply@talentboard.example", "TalentBoard")
"""Relays applications from a no-reply sender, with the applicant in Reply-To."""

NEWSLETTERS = (
    Person("Recruiter Weekly", "newsletter@recruiterweekly.example"),
    Person("HR Tech Digest", "digest@hrtech-digest.example"),
)

ROLES = (
    Role("Senior Data Engineer", "Brightwave Energy", "£85,000"),
    Role("Grid Control Engineer", "Brightwave Grid Services", "£62,000"),
    Role("Head of Platform", "Northbank Capital", "£120,000"),
    Role("Actuarial Analyst", "Northbank Insurance", "£55,000"),
    Role("Warehouse Operations Manager", "Kestrel Logistics", "£58,000"),
    Role("Clinical Systems Analyst", "Alder Health", "£52,000"),
    Role("Platform Engineer", "Quayside Software", "£78,000"),
    Role("E-commerce Product Manager", "Meridian Retail Group", "£72,000"),
)


def csv_text() -> str:
    """The CRM as `flask crm load` reads it: kind,name,email,company."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(crm.HEADER)
    for person in CONTACTS:
        writer.writerow(("contact", person.name, person.email, person.company))
    for person in CANDIDATES:
        writer.writerow(("candidate", person.name, person.email, ""))
    return out.getvalue()


def load(session: Session, store: DocumentStore) -> int:
    """Load the sample CRM the way `flask crm load` does, then relate group companies; returns records added.

    The CSV format has no column for related companies, so those are set on
    the models directly, as an admin would in the CRM itself.
    """
    rows = crm.read_rows(csv.DictReader(io.StringIO(csv_text())))
    added, _unchanged = crm.load_rows(session, rows, store)
    for name, other in RELATED_COMPANIES:
        first = session.scalar(select(Company).where(Company.name == name))
        second = session.scalar(select(Company).where(Company.name == other))
        if first is None or second is None:
            raise LookupError(f"the sample CRM has no company named {name!r} or {other!r}")
        first.relate(second)
    session.flush()
    return added
