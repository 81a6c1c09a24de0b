"""The waitlist: a citizen whose search found nothing asks to be told when a matching time opens;
freed and published slots are offered to waiting citizens, first come first offered, one offer per
slot at a time, each with a short exclusive hold and a single-use link. See docs/waitlist.md."""
