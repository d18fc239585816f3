"""test_controls.py on the Redis store: every control in every state, purchases while
paused and after close with payments and cancels of earlier reservations, the trail and
replays by request_id, field errors, quantities, kill -9 of the node after controls
(the trail and settings live in Redis), and controls during a flood checked against the
trail by order seq."""
import test_controls

if __name__ == "__main__":
    test_controls.main("redis")
