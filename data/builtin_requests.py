"""The built-in data's user requests: phrasings that make (user text, tool, arguments) with every argument
written in the text; requests missing information (with the clarifying question); requests no tool
serves (with the direct reply); and parallel requests. Used by data/generate.py.
"""

from builtin_catalog import CURRENCIES, LANGUAGES

# ---------------------------------------------------------------------------------------------------------
# Requests: each returns (user text, tool name, arguments); every argument is written in the text

def ask_weather(d):
    city, args = d.city, {}
    text = d.pick(["What's the weather in {c}?", "How warm is it in {c} right now?", "Weather for {c}, please.",
                   "Is it raining in {c}?", "Tell me the current conditions in {c}."]).format(c=city)
    args["city"] = city
    if d.chance(0.3):
        args["unit"] = d.pick(["celsius", "fahrenheit"])
        text += " " + d.pick(["In {u}, please.", "Give it to me in {u}.", "Use {u}."]).format(u=args["unit"])
    elif d.chance(0.2):
        args["days"] = d.rng.randint(2, 7)
        text = d.pick(["Give me the {n}-day forecast for {c}.", "What will the weather be in {c} over the next {n} "
                       "days?"]).format(n=args["days"], c=city)
    return text, "get_weather", args


def ask_kb(d):
    topic = d.internal
    text = d.pick(["What is our {t}?", "Can you find the {t} in the company wiki?", "Look up our internal docs on "
                   "the {t}.", "Where is the {t} documented internally?", "I need the {t} from our handbook.",
                   "Check our internal knowledge base for the {t}.", "What do our company policies say about "
                   "the {t}?"]).format(t=topic)
    return text, "search_knowledge_base", {"query": topic}


def ask_web(d):
    topic, args = d.public, {}
    text = d.pick(["Search the web for {t}.", "Can you look up {t} online?", "Find public information about {t}.",
                   "What does the internet say about {t}?", "Google {t} for me.", "Do a web search on {t}."]
                  ).format(t=topic)
    args["query"] = topic
    if d.chance(0.25):
        args["max_results"] = d.rng.randint(3, 10)
        text += f" Show me {args['max_results']} results."
    return text, "search_web", args


def ask_email(d):
    name = d.name
    args = {"to": d.email(name), "subject": d.subject, "body": d.body}
    text = d.pick(['Email {to} with the subject "{subject}" and say "{body}"',
                   'Send an email to {to}, subject "{subject}", message: "{body}"',
                   'Write to {to}: subject "{subject}", body "{body}"',
                   'Please send {to} a note titled "{subject}" that says "{body}"']).format(**args)
    if d.chance(0.25):
        args["cc"] = [d.email()]
        text += f" and cc {args['cc'][0]}."
    return text, "send_email", args


def ask_event(d):
    args = {"title": d.event, "date": d.date(), "time": d.time()}
    text = d.pick(['Put "{title}" on my calendar for {date} at {time}.', 'Schedule "{title}" on {date} at {time}.',
                   'Create a calendar event called "{title}" on {date}, starting {time}.',
                   'Add "{title}" to my calendar, {date} at {time}.']).format(**args)
    if d.chance(0.3):
        args["duration_minutes"] = d.pick([15, 30, 45, 60, 90, 120])
        text = text[:-1] + f" for {args['duration_minutes']} minutes."
    if d.chance(0.2):
        args["attendees"] = [d.email()]
        text = text[:-1] + f" and invite {args['attendees'][0]}."
    return text, "create_calendar_event", args


def ask_reminder(d):
    args = {"text": d.task, "time": d.time()}
    text = d.pick(["Remind me to {text} at {time}.", "Set a reminder at {time} to {text}.",
                   "At {time}, remind me to {text}.", "Can you ping me at {time} to {text}?"]).format(**args)
    if d.chance(0.3):
        args["date"] = d.date()
        text = text[:-1] + f" on {args['date']}" + text[-1]
    return text, "set_reminder", args


def ask_currency(d):
    source, target = d.rng.sample(CURRENCIES, 2)
    amount = d.pick([d.rng.randint(5, 5000), round(d.rng.uniform(1, 900), 2)])
    args = {"amount": amount, "from_currency": source, "to_currency": target}
    text = d.pick(["Convert {a} {f} to {t}.", "How much is {a} {f} in {t}?", "What's {a} {f} worth in {t} today?",
                   "Change {a} {f} into {t} for me."]).format(a=amount, f=source, t=target)
    return text, "convert_currency", args


def ask_stock(d):
    symbol = d.symbol
    text = d.pick(["What's the stock price of {s}?", "How is {s} trading right now?", "Get me the latest {s} quote.",
                   "Check the share price for {s}."]).format(s=symbol)
    return text, "get_stock_price", {"symbol": symbol}


def ask_restaurant(d):
    args = {"restaurant": d.restaurant, "party_size": d.rng.randint(1, 10), "date": d.date(), "time": d.time()}
    text = d.pick(["Book a table for {party_size} at {restaurant} on {date} at {time}.",
                   "Reserve {restaurant} for {party_size} people, {date} at {time}.",
                   "Can you get us a table at {restaurant}? {party_size} people, {date}, {time}."]).format(**args)
    if d.chance(0.3):
        args["outdoor_seating"] = d.chance(0.5)
        text += " We'd like to sit outside." if args["outdoor_seating"] else " Inside, please, not outdoors."
    return text, "book_restaurant", args


def ask_translate(d):
    args = {"text": d.phrase, "target_language": d.pick(LANGUAGES)}
    text = d.pick(['Translate "{text}" into {target_language}.', 'How do you say "{text}" in {target_language}?',
                   'What is "{text}" in {target_language}?']).format(**args)
    return text, "translate_text", args


def ask_ticket(d):
    args = {"title": d.ticket, "priority": d.pick(["low", "medium", "high", "urgent"])}
    text = d.pick(['Open a {priority} priority IT ticket: "{title}".', 'File a support ticket "{title}" with '
                   '{priority} priority.', 'Raise an IT ticket titled "{title}", priority {priority}.']).format(**args)
    return text, "create_support_ticket", args


def ask_music(d):
    args = {"query": d.song}
    text = d.pick(["Play {q}.", "Put on {q}, please.", "I want to listen to {q}.", "Start playing {q}."]
                  ).format(q=args["query"])
    if d.chance(0.3):
        args["shuffle"] = True
        text = text[:-1] + " on shuffle."
    return text, "play_music", args


def flight_number(d):
    return d.pick(["BA", "LH", "AF", "KL", "UA", "DL", "IB", "SK", "AY", "TP"]) + str(d.rng.randint(10, 2999))


def ask_flight(d):
    args = {"flight_number": flight_number(d)}
    text = d.pick(["Is flight {f} on time?", "What's the status of {f}?", "Check flight {f} for me.",
                   "Has {f} departed yet?"]).format(f=args["flight_number"])
    if d.chance(0.3):
        args["date"] = d.date()
        text = text[:-1] + f" on {args['date']}" + text[-1]
    return text, "get_flight_status", args


def ask_todo(d):
    args = {"task": d.task}
    text = d.pick(['Add "{task}" to my to-do list.', 'Put "{task}" on my todo list.', 'New task: "{task}".']
                  ).format(**args)
    if d.chance(0.3):
        args["due_date"] = d.date()
        text += f" It's due {args['due_date']}."
    if d.chance(0.2):
        args["tags"] = [d.pick(["home", "work", "errands", "finance", "health"])]
        text = text + f" Tag it {args['tags'][0]}."
    return text, "add_todo", args


def ask_order(d):
    order = f"{d.pick(['A', 'B', 'X', 'Z'])}{d.rng.randint(100000, 999999)}"
    text = d.pick(["Where is my order {o}?", "Track order {o}.", "What's the status of order {o}?",
                   "Has order {o} shipped?"]).format(o=order)
    return text, "get_order_status", {"order_id": order}


def ask_thermostat(d):
    args = {"temperature": d.pick([18, 19, 20, 21, 22, 23, 24, 19.5, 20.5, 21.5])}
    text = d.pick(["Set the thermostat to {t} degrees.", "Make it {t} degrees.", "Change the heating to {t}°C."]
                  ).format(t=args["temperature"])
    if d.chance(0.5):
        args["room"] = d.room
        text = text[:-1] + f" in the {args['room']}."
    if d.chance(0.3):
        args["mode"] = d.pick(["heat", "cool", "auto"])
        text = text[:-1] + f", {args['mode']} mode."
    return text, "set_thermostat", args


def ask_loan(d):
    args = {"principal": d.pick([5000, 12000, 25000, 180000, 250000, 320000, 450000]),
            "annual_rate": d.pick([3.5, 4, 4.25, 5.1, 6.5, 7.2]), "years": d.pick([3, 5, 10, 15, 20, 25, 30])}
    text = d.pick(["What's the monthly payment on a {principal} loan at {annual_rate}% over {years} years?",
                   "Calculate my monthly payment: {principal} borrowed, {annual_rate}% interest, {years} years.",
                   "If I borrow {principal} for {years} years at {annual_rate}%, what do I pay per month?"]
                  ).format(**args)
    return text, "calculate_loan_payment", args


ASK = {"get_weather": ask_weather, "search_knowledge_base": ask_kb, "search_web": ask_web, "send_email": ask_email,
       "create_calendar_event": ask_event, "set_reminder": ask_reminder, "convert_currency": ask_currency,
       "get_stock_price": ask_stock, "book_restaurant": ask_restaurant, "translate_text": ask_translate,
       "create_support_ticket": ask_ticket, "play_music": ask_music, "get_flight_status": ask_flight,
       "add_todo": ask_todo, "get_order_status": ask_order, "set_thermostat": ask_thermostat,
       "calculate_loan_payment": ask_loan}



# ---------------------------------------------------------------------------------------------------------
# Requests missing required information: (user text, tool, clarifying question, fill) where fill()
# gives the user's next message and the complete arguments (used by multi_turn)

def clarify_email(d):
    name, body = d.name, d.body
    text = d.pick(['Send an email to {n} saying "{b}"', 'Email {n}: "{b}"', 'Drop {n} a line: "{b}"']
                  ).format(n=name, b=body)
    to, subject = d.email(name), d.subject

    def fill():
        return f'Use {to}, with the subject "{subject}".', {"to": to, "subject": subject, "body": body}
    return text, "send_email", f"Sure. What is {name}'s email address, and what subject should I use?", fill


def clarify_restaurant(d):
    restaurant, size = d.restaurant, d.rng.randint(2, 8)
    text = d.pick(["Book a table at {r} for {n}.", "Get me a reservation at {r}, {n} people.",
                   "Can you reserve {r} for {n} of us?"]).format(r=restaurant, n=size)
    date, time = d.date(), d.time()

    def fill():
        return (d.pick(["{d} at {t}.", "On {d}, at {t} please.", "Make it {d}, {t}."]).format(d=date, t=time),
                {"restaurant": restaurant, "party_size": size, "date": date, "time": time})
    return text, "book_restaurant", f"Happy to. What date and time would you like the table at {restaurant}?", fill


def clarify_currency(d):
    source, target = d.rng.sample(CURRENCIES, 2)
    amount = d.rng.randint(10, 3000)
    text = d.pick(["Convert {a} {f}.", "How much is {a} {f} worth?", "I have {a} {f} to exchange."]
                  ).format(a=amount, f=source)

    def fill():
        return (d.pick(["To {t}.", "Into {t}, please.", "{t}."]).format(t=target),
                {"amount": amount, "from_currency": source, "to_currency": target})
    return text, "convert_currency", f"Which currency should I convert {amount} {source} into?", fill


def clarify_reminder(d):
    task, time = d.task, d.time()
    text = d.pick(["Remind me to {t}.", "Set a reminder to {t}.", "Don't let me forget to {t}."]).format(t=task)

    def fill():
        return d.pick(["At {t}.", "{t} works.", "Make it {t}."]).format(t=time), {"text": task, "time": time}
    return text, "set_reminder", f"What time should I remind you to {task}?", fill


def clarify_translate(d):
    phrase, language = d.phrase, d.pick(LANGUAGES)
    text = d.pick(['Translate "{p}" for me.', 'Can you translate "{p}"?', 'I need "{p}" translated.']).format(p=phrase)

    def fill():
        return d.pick(["{l}, please.", "Into {l}.", "{l}."]).format(l=language), {"text": phrase,
                                                                               "target_language": language}
    return (text, "translate_text", "Which language should I translate it into? I can do French, German, Spanish, "
            "Italian or Portuguese.", fill)


def clarify_weather(d):
    name, city = d.name, d.city
    text = d.pick(["I'm meeting {n} outside later. What's the weather like?", "Should I bring an umbrella when I "
                   "visit {n}?", "{n} asked me if it's cold out. What's the weather?"]).format(n=name)

    def fill():
        return d.pick(["In {c}.", "I'm in {c}.", "{c}, please."]).format(c=city), {"city": city}
    return text, "get_weather", "Which city should I check the weather for?", fill


def clarify_event(d):
    title, date, time = d.event, d.date(), d.time()
    text = d.pick(['Schedule "{t}" for me.', 'Add "{t}" to my calendar.', 'Put "{t}" in my calendar.']).format(t=title)

    def fill():
        return d.pick(["{d} at {t}.", "On {d}, starting {t}."]).format(d=date, t=time), {"title": title, "date": date,
                                                                                        "time": time}
    return text, "create_calendar_event", f"When should \"{title}\" be? I need a date and a start time.", fill


def clarify_flight(d):
    city, number = d.city, flight_number(d)
    text = d.pick(["Is my flight to {c} on time?", "Has my flight from {c} landed?", "Check my {c} flight."]
                  ).format(c=city)

    def fill():
        return d.pick(["It's {f}.", "Flight {f}.", "The number is {f}."]).format(f=number), {"flight_number": number}
    return text, "get_flight_status", "Sure. What's the flight number?", fill


def clarify_thermostat(d):
    room, temperature = d.room, d.pick([18, 19, 20, 21, 22, 23])
    text = d.pick(["Adjust the thermostat in the {r}.", "The {r} is uncomfortable, change the thermostat.",
                   "Change the {r} temperature."]).format(r=room)

    def fill():
        return d.pick(["{t} degrees.", "Set it to {t}.", "{t}°C, please."]).format(t=temperature), {
            "temperature": temperature, "room": room}
    return text, "set_thermostat", f"What temperature would you like in the {room}?", fill


def clarify_ticket(d):
    title, priority = d.ticket, d.pick(["low", "medium", "high", "urgent"])
    text = d.pick(['Open an IT ticket: "{t}".', 'File a support ticket saying "{t}".', 'Report to IT: "{t}".']
                  ).format(t=title)

    def fill():
        return d.pick(["{p} priority.", "Make it {p}.", "Priority {p}."]).format(p=priority), {"title": title,
                                                                                             "priority": priority}
    return text, "create_support_ticket", "What priority should it have: low, medium, high or urgent?", fill


def clarify_loan(d):
    principal, rate, years = d.pick([8000, 15000, 30000, 200000, 275000]), d.pick([3.9, 4.5, 5, 6.25]), d.pick(
        [5, 10, 20, 30])
    text = d.pick(["What would I pay each month on a {p} loan?", "I'm borrowing {p}. What's the monthly payment?"]
                  ).format(p=principal)

    def fill():
        return (d.pick(["{r}% over {y} years.", "{y} years at {r}%."]).format(r=rate, y=years),
                {"principal": principal, "annual_rate": rate, "years": years})
    return text, "calculate_loan_payment", "What's the annual interest rate, and how many years is the loan for?", fill


CLARIFY = [clarify_email, clarify_restaurant, clarify_currency, clarify_reminder, clarify_translate, clarify_weather,
           clarify_event, clarify_flight, clarify_thermostat, clarify_ticket, clarify_loan]


# ---------------------------------------------------------------------------------------------------------
# Requests no tool serves: (user text, direct reply)

def no_tool_request(d):
    a, b, word = d.rng.randint(11, 99), d.rng.randint(11, 99), d.word
    options = [
        (f"What is {a} times {b}?", f"{a} times {b} is {a * b}."),
        (f"What's {a} plus {b}?", f"{a} plus {b} is {a + b}."),
        (f"Subtract {b} from {a}.", f"{a} minus {b} is {a - b}."),
        (f'Spell "{word}" backwards.', f'"{word}" backwards is "{word[::-1]}".'),
        (f'How many letters are in "{word}"?', f'"{word}" has {len(word)} letters.'),
        (f'Write "{word}" in capital letters.', f'"{word.upper()}"'),
        (f"Order {d.food} for me from {d.restaurant}.",
         "I can't place food orders: none of the tools I have can do that."),
        (f"Buy {d.rng.randint(2, 50)} shares of {d.symbol}.",
         "I can't buy or sell shares: none of the tools I have can place trades."),
        (f"Cancel my flight {flight_number(d)}.", "I can't cancel flights: none of the tools I have can change "
                                                   "bookings. Please contact the airline."),
        (f"Turn off the lights in the {d.room}.", "I can't control the lights: none of the tools I have does that."),
        (f"Call {d.name} on the phone.", "I can't make phone calls with the tools I have."),
        (f"Hi, I'm {d.name}!", "Hi! Nice to meet you. How can I help today?"),
    ]
    return d.pick(options)


# ---------------------------------------------------------------------------------------------------------
# Parallel requests: clauses that join into one message, one call each

def clause(d, name):
    if name == "get_weather":
        c = d.city
        return f"check the weather in {c}", {"city": c}
    if name == "get_stock_price":
        s = d.symbol
        return f"get the price of {s}", {"symbol": s}
    if name == "convert_currency":
        f, t = d.rng.sample(CURRENCIES, 2)
        a = d.rng.randint(10, 2000)
        return f"convert {a} {f} to {t}", {"amount": a, "from_currency": f, "to_currency": t}
    if name == "add_todo":
        task = d.task
        return f'add "{task}" to my to-do list', {"task": task}
    if name == "set_reminder":
        task, time = d.task, d.time()
        return f"remind me to {task} at {time}", {"text": task, "time": time}
    if name == "play_music":
        song = d.song
        return f"play {song}", {"query": song}
    if name == "set_thermostat":
        t = d.pick([19, 20, 21, 22])
        return f"set the thermostat to {t} degrees", {"temperature": t}
    if name == "get_flight_status":
        f = flight_number(d)
        return f"check the status of flight {f}", {"flight_number": f}
    if name == "get_order_status":
        o = f"{d.pick(['A', 'B', 'X'])}{d.rng.randint(100000, 999999)}"
        return f"track order {o}", {"order_id": o}
    title, priority = d.ticket, d.pick(["low", "medium", "high", "urgent"])
    return f'open a {priority} priority IT ticket "{title}"', {"title": title, "priority": priority}


CLAUSE_TOOLS = ["get_weather", "get_stock_price", "convert_currency", "add_todo", "set_reminder", "play_music",
                "set_thermostat", "get_flight_status", "get_order_status", "create_support_ticket"]


def parallel_request(d):
    """(user text, [(tool, arguments), ...]): the same tool twice, or two or three different tools."""
    if d.chance(0.35):
        kind = d.pick(["weather", "stock", "translate"])
        if kind == "weather":
            a, b = d.two("city")
            text = d.pick(["What's the weather in {a} and {b}?", "Compare the weather in {a} and {b}.",
                           "How warm is it in {a} and in {b}?"]).format(a=a, b=b)
            return text, [("get_weather", {"city": a}), ("get_weather", {"city": b})]
        if kind == "stock":
            a, b = d.two("symbol")
            text = d.pick(["Get me quotes for {a} and {b}.", "How are {a} and {b} trading?",
                           "Check the prices of {a} and {b}."]).format(a=a, b=b)
            return text, [("get_stock_price", {"symbol": a}), ("get_stock_price", {"symbol": b})]
        phrase, (l1, l2) = d.phrase, d.rng.sample(LANGUAGES, 2)
        text = f'Translate "{phrase}" into {l1} and {l2}.'
        return text, [("translate_text", {"text": phrase, "target_language": l1}),
                      ("translate_text", {"text": phrase, "target_language": l2})]
    names = d.rng.sample(CLAUSE_TOOLS, 3 if d.chance(0.2) else 2)
    parts = [clause(d, name) for name in names]
    texts = [p[0] for p in parts]
    if len(texts) == 3:
        text = f"{texts[0][0].upper()}{texts[0][1:]}, {texts[1]} and {texts[2]}."
    else:
        text = d.pick(["Please {0} and {1}.", "Can you {0}, and also {1}?", "{0}. Also {1}.", "I need you to {0} "
                       "and {1}."]).format(*texts)
        text = text[0].upper() + text[1:]
    return text, [(name, p[1]) for name, p in zip(names, parts)]


