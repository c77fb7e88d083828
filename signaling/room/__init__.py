"""The room application: who is in a room, who hears and sees whom, and the messages that change it."""
