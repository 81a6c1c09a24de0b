from django.http import HttpRequest

from .session import current_citizen, found_ids


def citizen(request: HttpRequest) -> dict[str, object]:
    """The identified citizen's first name for the page header; nothing else of theirs. A session
    that only opened an appointment by its reference still gets the "end my session" button."""
    person = current_citizen(request)
    return {
        "citizen_first_name": person.first_name if person else "",
        "citizen_identified": bool(person) or bool(found_ids(request)),
    }
