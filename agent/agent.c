/* agent actor: see agent.h */
