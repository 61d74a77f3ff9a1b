-- The tables of Skip's hackernews example (examples/hackernews/db/schema.sql in SkipLabs/skip):
-- the same names, columns and types, which the reactive service and Skip's web service use.
-- The rows below are this example's own.
CREATE TABLE users (
    "id" SERIAL PRIMARY KEY,
    "name" TEXT,
    "email" TEXT
);
CREATE TABLE posts (
    "id" SERIAL PRIMARY KEY,
    "author_id" INTEGER,
    "title" TEXT,
    "url" TEXT,
    "body" TEXT,
    "date" TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE upvotes (
    "id" SERIAL PRIMARY KEY,
    "user_id" INTEGER,
    "post_id" INTEGER
);

INSERT INTO users ("id", "name", "email") VALUES
    (1, 'Ada', 'ada@example.org'),
    (2, 'Grace', 'grace@example.org'),
    (3, 'Edsger', 'edsger@example.org'),
    (4, 'Barbara', 'barbara@example.org');
SELECT setval('users_id_seq', max(id)) FROM users;

INSERT INTO posts ("id", "title", "url", "body", "author_id", "date") VALUES
    (1, 'Incremental computation, explained', 'https://example.org/incremental', '', 1, '2026-11-02 09:00:00+00'),
    (2, 'Leader/follower replication on Redis Streams', 'https://example.org/streams', '', 2, '2026-11-03 10:30:00+00'),
    (3, 'Server-Sent Events in practice', 'https://example.org/sse', '', 3, '2026-11-04 08:15:00+00'),
    (4, 'A post by someone who left', 'https://example.org/gone', '', 99, '2026-11-05 12:00:00+00');
SELECT setval('posts_id_seq', max(id)) FROM posts;

INSERT INTO upvotes ("user_id", "post_id") VALUES
    (1, 2), (3, 2), (4, 2),
    (2, 1), (4, 1),
    (1, 3);
