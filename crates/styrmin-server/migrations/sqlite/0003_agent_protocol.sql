-- The protocol version the cluster's agent last spoke, and why the server last refused it
-- (an incompatible major version), shown on the cluster.
ALTER TABLE clusters ADD COLUMN agent_protocol TEXT;
ALTER TABLE clusters ADD COLUMN agent_refusal TEXT;
