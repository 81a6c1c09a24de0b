from .session import current_citizen


def citizen(request):
    """The identified citizen's first name for the page header; nothing else of theirs."""
    person = current_citizen(request)
    return {"citizen_first_name": person.first_name if person else "", "citizen_identified": bool(person)}
