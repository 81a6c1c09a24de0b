def citizen(request):
    return {}
