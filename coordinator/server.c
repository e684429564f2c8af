/* coordinator actor: see server.h */
