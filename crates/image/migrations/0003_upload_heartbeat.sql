-- When the API node streaming an image's data last said it was alive: an image left in
-- `saving` with an old heartbeat lost its upload (the node died) and goes back to `queued`.
ALTER TABLE images ADD COLUMN heartbeat TEXT;
